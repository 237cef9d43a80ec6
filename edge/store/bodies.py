"""The stored form of a record in hub.db (``records.body``): small, because a hub keeps weeks of them.

A reading (the bulk of the stream) is stored as a msgpack array holding only what its row's
columns do not (:class:`StoredReading`): kind, observations, device time, whether it was
bound to the row's session when stored, status and raw frame. ``at``, ``station_id``,
``device_id`` and ``session_id`` come back from the row, and ``hub_id``, ``epoch``, ``seq``
and ``uid`` from the store (:class:`edge.store.reader.Reader`), as before.

An observation is an array ``[code, value, flag, unit, original_value, original_unit]`` with
trailing nils left out. A code of :data:`CODES` is stored as its index there, a kind of
:data:`KINDS` likewise; the unit is nil when it is the code's canonical unit; a value that
is a whole number of the code's smallest step (``10**-decimals``) is stored as that integer
(170.5 cm -> 1705). A device time of the form ``YYYY-MM-DDTHH:MM:SS`` (what the drivers give)
is stored as its seconds since :data:`DEVICE_EPOCH` (5 bytes instead of 20). Anything else is
stored as given, so every reading round-trips exactly.
The two tables are part of the file format: append to them, never reorder or change a row.

The other records (a few per visit) keep msgspec's msgpack map form, without the fields that
hold their defaults (hub id, epoch and seq are always empty when stored: the store fills them
in) nor ``at``, which the row holds; a closing or a binding leaves ``session_id`` to the row as
well (119 -> 38 B for a closing). A session opening keeps its session and station inside: the
ledger encrypts it, and its sealed copy in the dead-letter list has no session column. A map
written whole before still decodes.
The two forms tell themselves apart by their first byte (a msgpack array against a map), so a
row written before schema v6 still decodes; the v6 migration converts them (:func:`compact`).
"""

from __future__ import annotations

import datetime as dt
import math

import msgspec

from protocol.model import Observation, Reading, ReadingKind, Record, SessionOpened

#: (code, canonical unit, decimals) by stored index; append only (see the module docstring)
CODES: tuple[tuple[str, str, int], ...] = (
    ("8302-2", "cm", 1), ("29463-7", "kg", 2), ("39156-5", "kg/m2", 1), ("8480-6", "mm[Hg]", 0),
    ("8462-4", "mm[Hg]", 0), ("8478-0", "mm[Hg]", 0), ("8867-4", "/min", 0), ("8310-5", "Cel", 1),
    ("41982-0", "%", 1), ("9843-4", "cm", 1), ("mchub-cuff", "mm[Hg]", 0), ("mchub-basal-metabolism", "kJ", 0),
    ("mchub-muscle-percentage", "%", 1), ("mchub-muscle-mass", "kg", 2), ("mchub-fat-free-mass", "kg", 2),
    ("mchub-soft-lean-mass", "kg", 2), ("mchub-body-water-mass", "kg", 2), ("mchub-impedance", "Ohm", 1),
)
#: reading kinds by stored index; append only
KINDS: tuple[ReadingKind, ...] = ("blood_pressure", "cuff_pressure", "temperature", "weight", "body_composition",
                                  "height_weight", "height", "generic")
#: a device time stored as an integer counts seconds from here (part of the file format)
DEVICE_EPOCH = dt.datetime(2000, 1, 1)
_LAST_SECOND = (dt.datetime.max - DEVICE_EPOCH) // dt.timedelta(seconds=1)
_CODE_INDEX = {code: i for i, (code, _unit, _decimals) in enumerate(CODES)}
_KIND_INDEX = {kind: i for i, kind in enumerate(KINDS)}

_encode = msgspec.msgpack.Encoder().encode
_decode_record = msgspec.msgpack.Decoder(Record).decode
_decode_map = msgspec.msgpack.Decoder(dict[str, object]).decode

StoredObservation = tuple[int | float | str | None, ...]


class StoredReading(msgspec.Struct, array_like=True, omit_defaults=True, frozen=True, gc=False):
    """A reading without what its row already holds (trailing defaults are not written)."""

    kind: int | str
    observations: tuple[StoredObservation, ...]
    device_time: str | int | None = None  #: an int: seconds since DEVICE_EPOCH (see the module docstring)
    #: it was stored bound to the row's ``session_id`` (a reading bound later by staff stays
    #: False: its binding travels as its own ``ReadingBound`` record)
    bound: bool = False
    status: tuple[str, ...] = ()
    raw: bytes = b""


_decode_reading = msgspec.msgpack.Decoder(StoredReading).decode


def _pack(o: Observation) -> StoredObservation:
    index = _CODE_INDEX.get(o.code)
    if index is None:
        out: list[int | float | str | None] = [o.code, o.value, o.flag, o.unit, o.original_value, o.original_unit]
    else:
        _code, unit, decimals = CODES[index]
        scaled = round(o.value * 10 ** decimals) if abs(o.value) < 1e15 else None
        exact = (scaled is not None and scaled / 10 ** decimals == o.value
                 and math.copysign(1.0, o.value) == math.copysign(1.0, scaled or 1.0))  # -0.0 stays a float
        value = scaled if exact else o.value
        out = [index, value, o.flag, None if o.unit == unit else o.unit, o.original_value, o.original_unit]
    while out[-1] is None:
        out.pop()
    return tuple(out)


def _unpack(s: StoredObservation) -> Observation:
    code, value, flag, unit, original_value, original_unit = (*s, None, None, None, None)[:6]
    if isinstance(code, int):
        if not 0 <= code < len(CODES):
            raise msgspec.ValidationError(f"stored observation {s!r}: no code number {code}")
        code, canonical, decimals = CODES[code]
        if isinstance(value, int):
            value = value / 10 ** decimals
        unit = canonical if unit is None else unit
    if (not isinstance(code, str) or not isinstance(value, int | float) or not isinstance(unit, str)
            or not isinstance(original_value, int | float | None) or not isinstance(original_unit, str | None)
            or not isinstance(flag, str | None)):
        raise msgspec.ValidationError(f"stored observation {s!r} is malformed")
    return Observation(code=code, value=float(value), unit=unit,
                       original_value=None if original_value is None else float(original_value),
                       original_unit=original_unit, flag=flag)  # type: ignore[arg-type]


def _pack_time(text: str | None) -> str | int | None:
    """A device time as seconds since :data:`DEVICE_EPOCH` when that gives back exactly ``text``."""
    if text is None or len(text) != 19:
        return text
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return text
    seconds = (when - DEVICE_EPOCH) // dt.timedelta(seconds=1) if when.tzinfo is None else -1
    return seconds if 0 <= seconds <= _LAST_SECOND and _unpack_time(seconds) == text else text


def _unpack_time(stored: str | int | None) -> str | None:
    if isinstance(stored, int):
        if not 0 <= stored <= _LAST_SECOND:
            raise msgspec.ValidationError(f"stored device time {stored} is out of range")
        return (DEVICE_EPOCH + dt.timedelta(seconds=stored)).isoformat()
    return stored


def encode_body(record: Record) -> bytes:
    """Stored form of a record."""
    if isinstance(record, Reading):
        return _encode(StoredReading(_KIND_INDEX.get(record.kind, record.kind),
                                     tuple(_pack(o) for o in record.observations), _pack_time(record.device_time),
                                     record.session_id is not None, record.status, record.raw))
    row = ("at",) if isinstance(record, SessionOpened) else ("at", "session_id")
    defaults = {f.encode_name: f.default for f in msgspec.structs.fields(record)}
    return _encode({k: v for k, v in msgspec.to_builtins(record).items()
                    if k not in row and (k not in defaults or defaults[k] != v)})


def _record(body: bytes, at: int, session_id: str | None) -> Record:
    """A visit's record from its stored map, the fields left out filled from the row."""
    fields = _decode_map(body)
    fields.setdefault("at", at)
    if session_id is not None:
        fields.setdefault("session_id", session_id)
    record: Record = msgspec.convert(fields, Record)
    return record


def is_compact(body: bytes) -> bool:
    """True for a body in the array form of :class:`StoredReading` (msgpack fixarray, array 16 or 32)."""
    return bool(body) and (0x90 <= body[0] <= 0x9F or body[0] in (0xDC, 0xDD))


def decode_body(body: bytes, at: int = 0, station_id: str | None = None, device_id: str | None = None,
                session_id: str | None = None) -> Record:
    """Inverse of :func:`encode_body`, given the row's columns (a screen reading only the
    observations may leave them out)."""
    if not is_compact(body):
        return _record(body, at, session_id)
    s = _decode_reading(body)
    if isinstance(s.kind, int) and not 0 <= s.kind < len(KINDS):
        raise msgspec.ValidationError(f"stored reading: no kind number {s.kind}")
    kind = KINDS[s.kind] if isinstance(s.kind, int) else s.kind
    return Reading(at=at, device_id=device_id or "", station_id=station_id or "", kind=kind,  # type: ignore[arg-type]
                   observations=tuple(_unpack(o) for o in s.observations), device_time=_unpack_time(s.device_time),
                   session_id=session_id if s.bound else None, status=s.status, raw=s.raw)


def compact(body: bytes) -> bytes:
    """A reading's body as written before schema v6, in today's stored form (other bodies unchanged)."""
    if is_compact(body):
        return body
    record = _decode_record(body)
    return encode_body(record) if isinstance(record, Reading) else body


def self_contained(body: bytes, at: int, station_id: str | None, device_id: str | None,
                   session_id: str | None) -> bytes:
    """The record of a row in the map form that needs no row (a dead letter outlives its row)."""
    return _encode(decode_body(body, at, station_id, device_id, session_id))

