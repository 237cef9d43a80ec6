"""Compact binary form of the records in one sync batch (the plaintext of the envelope).

The body is ``zstd(msgpack([record, ...]))``. Each record is a msgpack array whose first
element is an integer tag (0 reading, 1 session opened, 2 session closed, 3 reading
bound). Identity fields are *not* sent: ``hub_id`` and ``epoch`` come from the batch
header, the i-th record has ``seq = first_seq + i``, a reading's ``uid`` is derived
(:func:`protocol.ids.reading_uid`), and times are deltas from the previous record.
docs/protocol.md gives the exact field order.

msgspec does the (de)serialisation: typed, validating decoding straight into structs,
several times faster than json or pickle, and compact msgpack on the wire. The wire
structs are ``gc=False`` (they cannot form reference cycles), so decoding thousands of
them does not trigger the cyclic garbage collector over and over. :func:`decode_columns`
stops there (the cloud's ingest path); :func:`decode_records` builds full records.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

import msgspec
import zstandard

from protocol.errors import BadBody, BodyTooLarge
from protocol.ids import reading_uid_ints, reading_uids
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


class WireObservation(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """An observation as it travels in a body (the fields of :class:`protocol.model.Observation`)."""

    code: Short
    value: float
    unit: Short
    original_value: float | None = None
    original_unit: Short | None = None
    flag: Flag | None = None


class WireReading(msgspec.Struct, array_like=True, frozen=True, tag=0, gc=False):
    """A reading as it travels in a body: no identity fields, time as a delta (``dt``)."""

    dt: int
    device_id: Short
    station_id: Short
    kind: ReadingKind
    observations: Annotated[tuple[WireObservation, ...], msgspec.Meta(max_length=64)]
    device_time: Short | None
    session_id: Short | None
    status: Annotated[tuple[Short, ...], msgspec.Meta(max_length=32)]
    raw: Annotated[bytes, msgspec.Meta(max_length=MAX_RAW)]


class _Opened(msgspec.Struct, array_like=True, frozen=True, tag=1, gc=False):
    dt: int
    session_id: Short
    station_id: Short
    subject: Subject
    pregnant_weeks: int | None


class _Closed(msgspec.Struct, array_like=True, frozen=True, tag=2, gc=False):
    dt: int
    session_id: Short
    reason: CloseReason


class _Bound(msgspec.Struct, array_like=True, frozen=True, tag=3, gc=False):
    dt: int
    reading_uid: Short
    session_id: Short
    by: Short


_Wire = WireReading | _Opened | _Closed | _Bound
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[_Wire])
_zstd = threading.local()  # one decompressor per thread: a zstandard object must not be used by two threads at
# once (the hub seals several batches in flight, each in a worker thread; two sharing one compressor failed with
# "cannot compress: Src size is incorrect" and stopped the hub's sync)


def _compressor() -> zstandard.ZstdCompressor:
    """A new compressor for each body: one kept for good holds its working buffers at the size of the largest
    body it ever compressed, in every thread that sealed one (the hub's resident memory kept 2.6 MB more after
    a few 400 kB batches; a new one per batch costs ~0.1 ms against the batch's own milliseconds)."""
    return zstandard.ZstdCompressor(level=3)


def _decompressor() -> zstandard.ZstdDecompressor:
    d: zstandard.ZstdDecompressor | None = getattr(_zstd, "d", None)
    if d is None:
        d = _zstd.d = zstandard.ZstdDecompressor()
    return d


def _to_wire(r: Record, dt: int) -> _Wire:
    if isinstance(r, Reading):
        obs = tuple(
            WireObservation(o.code, o.value, o.unit, o.original_value, o.original_unit, o.flag) for o in r.observations
        )
        return WireReading(dt, r.device_id, r.station_id, r.kind, obs, r.device_time, r.session_id,
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
    return _compressor().compress(_encoder.encode(wire))


def _decode_wire(body: bytes, max_size: int) -> list[_Wire]:
    try:
        size = zstandard.frame_content_size(body)
    except zstandard.ZstdError as exc:
        raise BadBody(f"body is not a zstd frame: {exc}") from exc
    if size < 0:
        raise BadBody("body does not declare its decompressed size")
    if size > max_size:
        raise BodyTooLarge(f"decompressed body of {size} bytes exceeds the limit of {max_size}")
    try:
        return _decoder.decode(_decompressor().decompress(body))
    except (zstandard.ZstdError, msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec's msgpack decoder raises UnicodeDecodeError for invalid UTF-8 in a string
        raise BadBody(f"body does not decode: {exc}") from exc


def _other(w: _Opened | _Closed | _Bound, hub_id: str, epoch: int, seq: int, at: int) -> Record:
    if isinstance(w, _Opened):
        return SessionOpened(hub_id=hub_id, epoch=epoch, seq=seq, at=at, session_id=w.session_id,
                             station_id=w.station_id, subject=w.subject, pregnant_weeks=w.pregnant_weeks)
    if isinstance(w, _Closed):
        return SessionClosed(hub_id=hub_id, epoch=epoch, seq=seq, at=at, session_id=w.session_id, reason=w.reason)
    return ReadingBound(hub_id=hub_id, epoch=epoch, seq=seq, at=at, reading_uid=w.reading_uid,
                        session_id=w.session_id, by=w.by)


def _reading(w: WireReading, hub_id: str, epoch: int, seq: int, at: int, uid: str) -> Reading:
    obs = tuple(Observation(code=o.code, value=o.value, unit=o.unit, original_value=o.original_value,
                            original_unit=o.original_unit, flag=o.flag) for o in w.observations)
    return Reading(hub_id=hub_id, epoch=epoch, seq=seq, at=at, uid=uid, device_id=w.device_id,
                   station_id=w.station_id, kind=w.kind, observations=obs, device_time=w.device_time,
                   session_id=w.session_id, status=w.status, raw=w.raw)


def decode_records(
    body: bytes, *, hub_id: str, epoch: int, first_seq: int, max_size: int = 64 << 20
) -> list[Record]:
    """Inverse of :func:`encode_records`; raises BadBody or BodyTooLarge, never anything else."""
    return decode_columns(body, hub_id=hub_id, epoch=epoch, first_seq=first_seq, max_size=max_size).records()


@dataclass(frozen=True, slots=True)
class Columns:
    """A decoded body with its readings kept as columns: no Reading/Observation objects.

    The cloud's ingest hot path stores readings straight from these lists (``seq[i]``,
    ``at[i]`` and ``readings[i]`` belong together); the other records (a few per visit)
    are full records in ``others``. :meth:`records` builds what :func:`decode_records`
    returns.
    """

    hub_id: str
    epoch: int
    first_seq: int
    count: int  #: records in the body (readings and others)
    seq: list[int]  #: of each reading
    at: list[int]  #: hub time of each reading, ms since 1970
    readings: list[WireReading]
    others: list[Record]  #: session opened / closed, reading bound, in seq order

    def uids(self) -> list[str]:
        """The derived UUIDv7 of each reading (:func:`protocol.ids.reading_uid`)."""
        return reading_uids(self.hub_id, self.epoch, self.seq, self.at)

    def uid_ints(self) -> list[int]:
        """:meth:`uids` as 128-bit integers."""
        return reading_uid_ints(self.hub_id, self.epoch, self.seq, self.at)

    def records(self) -> list[Record]:
        """Every record, in seq order, with identity fields filled in."""
        out: list[Record] = list(self.others)
        out += (_reading(w, self.hub_id, self.epoch, seq, at, uid)
                for w, seq, at, uid in zip(self.readings, self.seq, self.at, self.uids(), strict=True))
        if self.others and self.readings:
            out.sort(key=lambda r: r.seq)
        return out


def decode_columns(
    body: bytes, *, hub_id: str, epoch: int, first_seq: int, max_size: int = 64 << 20
) -> Columns:
    """Decode a body into :class:`Columns`; raises BadBody or BodyTooLarge, never anything else."""
    wire = _decode_wire(body, max_size)
    seqs: list[int] = []
    ats: list[int] = []
    readings: list[WireReading] = []
    others: list[Record] = []
    at = 0
    seq = first_seq
    for w in wire:
        at += w.dt
        if type(w) is WireReading:
            seqs.append(seq)
            ats.append(at)
            readings.append(w)
        else:
            others.append(_other(w, hub_id, epoch, seq, at))  # type: ignore[arg-type]
        seq += 1
    return Columns(hub_id, epoch, first_seq, len(wire), seqs, ats, readings, others)
