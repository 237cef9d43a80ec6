"""The records of the sync stream (DESIGN.md §3).

The hub assigns every record a ``seq`` inside the SQLite transaction that stores it, so
the stream of one ``(hub_id, epoch)`` is gap-free: readings, session openings and
closings, and late bindings of a reading to a session all travel in that one order and
are therefore delivered exactly once by the same mechanism.

The JSON form (``to_json``/``from_json``) is stable and human-readable; the compact
binary form used inside batches is in :mod:`protocol.batch`. Every struct here is
``gc=False``: records hold only strings, numbers, bytes, observations and a subject, so
they can never form a reference cycle, and the cyclic garbage collector need not track
the millions of them a cloud worker decodes.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Flag = Literal["N", "H", "L", "HH", "LL", "A"]

#: what kind of measurement event a reading is; decides which observations to expect
ReadingKind = Literal[
    "blood_pressure",  # systolic, diastolic, MAP, pulse
    "cuff_pressure",  # intermediate cuff pressure while inflating (kiosk only)
    "temperature",
    "weight",  # weight, optionally height and BMI
    "body_composition",
    "height_weight",  # a station measuring both
    "height",
    "generic",  # Modbus / MQTT devices with a configured register map
]


class Observation(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One coded value: LOINC ``code``, ``value`` in the canonical UCUM ``unit``.

    When the device reported another unit, ``original_value``/``original_unit`` keep
    exactly what it sent.
    """

    code: str
    value: float
    unit: str
    original_value: float | None = None
    original_unit: str | None = None
    flag: Flag | None = None


class Subject(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """A person as identified at a station (ID card, QR code or staff entry).

    ``national_id`` is the 18-character resident ID number, validated and upper-case.
    It only ever travels inside a sealed batch and is stored encrypted.
    """

    national_id: str | None = None
    name: str = ""
    sex: Literal["0", "1", "2", "9"] = "0"  # GB/T 2261.1
    birth_date: str | None = None  # YYYY-MM-DD
    ethnic_code: str | None = None  # GB 3304
    address: str | None = None
    authority: str | None = None
    valid_from: str | None = None  # YYYY-MM-DD
    valid_to: str | None = None  # YYYY-MM-DD, or "long-term" (长期)
    mrn: str | None = None  # hospital medical record number, when known
    source: Literal["idcard", "qr", "staff"] = "idcard"


CloseReason = Literal["timeout", "next_card", "finished", "staff", "shutdown"]


class _Record(msgspec.Struct, kw_only=True, tag_field="type", gc=False):
    """Fields every record of the stream has; ``seq`` is unique within ``(hub_id, epoch)``."""

    hub_id: str = ""
    epoch: int = 0
    seq: int = 0
    at: int = 0  #: hub time of the event, milliseconds since 1970-01-01 UTC


#: reading status flag: the reading comes from a simulator (demo, training, tests), not a patient;
#: kept end to end, and never sent to the HIS or the MCH platform unless the cloud is a training rig
SIMULATED = "simulated"


class Reading(_Record, tag="reading", kw_only=True):
    """One measurement event from one device."""

    uid: str = ""  #: UUIDv7, derived from (hub_id, epoch, seq, at) by protocol.ids.reading_uid
    device_id: str
    station_id: str
    kind: ReadingKind
    observations: tuple[Observation, ...]
    device_time: str | None = None  #: the device's own clock, ISO 8601 as the device gave it
    session_id: str | None = None
    status: tuple[str, ...] = ()  #: device status bits, e.g. "body_movement", "irregular_pulse"
    raw: bytes = b""  #: the frame it was decoded from


class SessionOpened(_Record, tag="session_opened", kw_only=True):
    """A patient identified at a station; readings from its devices now bind to the session."""

    session_id: str
    station_id: str
    subject: Subject
    pregnant_weeks: int | None = None


class SessionClosed(_Record, tag="session_closed", kw_only=True):
    """The session ended: timeout, next card, patient finished, or staff."""

    session_id: str
    reason: CloseReason


class ReadingBound(_Record, tag="reading_bound", kw_only=True):
    """Staff bound an earlier, unbound reading to a session (audited on the hub)."""

    reading_uid: str
    session_id: str
    by: str  #: staff user name


Record = Reading | SessionOpened | SessionClosed | ReadingBound

_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder(Record)


def to_json(record: Record) -> bytes:
    """Stable JSON form of one record (``type`` field names the kind)."""
    return _json_encoder.encode(record)


def from_json(data: bytes | str) -> Record:
    """Parse the JSON form; raises ``msgspec.ValidationError``/``DecodeError`` on bad input."""
    try:
        record: Record = _json_decoder.decode(data)
    except UnicodeDecodeError as exc:  # msgspec lets this escape for invalid UTF-8 in a key
        raise msgspec.DecodeError(f"invalid UTF-8: {exc}") from exc
    return record
