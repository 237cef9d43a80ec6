"""Compact binary form of the records in one sync batch (the plaintext of the envelope).

The body is ``zstd(msgpack([record, ...]))``. Each record is a msgpack array whose first
element is an integer tag (0 reading, 1 session opened, 2 session closed, 3 reading
bound). Identity fields are *not* sent: ``hub_id`` and ``epoch`` come from the batch
header, the i-th record has ``seq = first_seq + i``, a reading's ``uid`` is derived
(:func:`protocol.ids.reading_uid`), and times are deltas from the previous record.
docs/protocol.md gives the exact field order.

msgspec does the (de)serialisation: typed, validating decoding straight into structs,
several times faster than json or pickle, and compact msgpack on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec
import zstandard

from protocol.errors import BadBody, BodyTooLarge
from protocol.ids import reading_uid
from protocol.model import (
    CloseReason,
    Flag,
    Observation,
    Reading,
    ReadingBound,
    ReadingKind,
    Record,
    SessionClosed,
    SessionOpened,
    Subject,
)

Short = Annotated[str, msgspec.Meta(max_length=128)]
MAX_RAW = 8192  #: longest device frame kept with a reading (an ID-card frame is 1,295 bytes)


class _Obs(msgspec.Struct, array_like=True, frozen=True):
    code: Short
    value: float
    unit: Short
    original_value: float | None = None
    original_unit: Short | None = None
    flag: Flag | None = None


class _Reading(msgspec.Struct, array_like=True, frozen=True, tag=0):
    dt: int
    device_id: Short
    station_id: Short
    kind: ReadingKind
    observations: Annotated[tuple[_Obs, ...], msgspec.Meta(max_length=64)]
    device_time: Short | None
    session_id: Short | None
    status: Annotated[tuple[Short, ...], msgspec.Meta(max_length=32)]
    raw: Annotated[bytes, msgspec.Meta(max_length=MAX_RAW)]


class _Opened(msgspec.Struct, array_like=True, frozen=True, tag=1):
    dt: int
    session_id: Short
    station_id: Short
    subject: Subject
    pregnant_weeks: int | None


class _Closed(msgspec.Struct, array_like=True, frozen=True, tag=2):
    dt: int
    session_id: Short
    reason: CloseReason


class _Bound(msgspec.Struct, array_like=True, frozen=True, tag=3):
    dt: int
    reading_uid: Short
    session_id: Short
    by: Short


_Wire = _Reading | _Opened | _Closed | _Bound
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[_Wire])
_compressor = zstandard.ZstdCompressor(level=3)
_decompressor = zstandard.ZstdDecompressor()


def _to_wire(r: Record, dt: int) -> _Wire:
    if isinstance(r, Reading):
        obs = tuple(
            _Obs(o.code, o.value, o.unit, o.original_value, o.original_unit, o.flag) for o in r.observations
        )
        return _Reading(dt, r.device_id, r.station_id, r.kind, obs, r.device_time, r.session_id,
                        r.status, r.raw)
    if isinstance(r, SessionOpened):
        return _Opened(dt, r.session_id, r.station_id, r.subject, r.pregnant_weeks)
    if isinstance(r, SessionClosed):
        return _Closed(dt, r.session_id, r.reason)
    return _Bound(dt, r.reading_uid, r.session_id, r.by)


def encode_records(records: Sequence[Record]) -> bytes:
    """Serialise records (consecutive seqs of one hub and epoch) to the compressed body."""
    prev = 0
    wire = []
    for r in records:
        wire.append(_to_wire(r, r.at - prev))
        prev = r.at
    return _compressor.compress(_encoder.encode(wire))


def decode_records(
    body: bytes, *, hub_id: str, epoch: int, first_seq: int, max_size: int = 64 << 20
) -> list[Record]:
    """Inverse of :func:`encode_records`; raises BadBody or BodyTooLarge, never anything else."""
    try:
        size = zstandard.frame_content_size(body)
    except zstandard.ZstdError as exc:
        raise BadBody(f"body is not a zstd frame: {exc}") from exc
    if size < 0:
        raise BadBody("body does not declare its decompressed size")
    if size > max_size:
        raise BodyTooLarge(f"decompressed body of {size} bytes exceeds the limit of {max_size}")
    try:
        wire = _decoder.decode(_decompressor.decompress(body))
    except (zstandard.ZstdError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec's msgpack decoder raises UnicodeDecodeError for invalid UTF-8 in a string
        raise BadBody(f"body does not decode: {exc}") from exc
    out: list[Record] = []
    at = 0
    for i, w in enumerate(wire):
        seq = first_seq + i
        at += w.dt
        rec: Record
        if isinstance(w, _Reading):
            obs = tuple(
                Observation(code=o.code, value=o.value, unit=o.unit, original_value=o.original_value,
                            original_unit=o.original_unit, flag=o.flag)
                for o in w.observations
            )
            rec = Reading(hub_id=hub_id, epoch=epoch, seq=seq, at=at,
                          uid=reading_uid(hub_id, epoch, seq, at), device_id=w.device_id,
                          station_id=w.station_id, kind=w.kind, observations=obs,
                          device_time=w.device_time, session_id=w.session_id, status=w.status, raw=w.raw)
        elif isinstance(w, _Opened):
            rec = SessionOpened(hub_id=hub_id, epoch=epoch, seq=seq, at=at, session_id=w.session_id,
                                station_id=w.station_id, subject=w.subject, pregnant_weeks=w.pregnant_weeks)
        elif isinstance(w, _Closed):
            rec = SessionClosed(hub_id=hub_id, epoch=epoch, seq=seq, at=at, session_id=w.session_id,
                                reason=w.reason)
        else:
            rec = ReadingBound(hub_id=hub_id, epoch=epoch, seq=seq, at=at, reading_uid=w.reading_uid,
                               session_id=w.session_id, by=w.by)
        out.append(rec)
    return out
