"""Pure codec for JSON measurement messages from MQTT devices (docs/fieldbus.md §2).

>>> msg = decode_message(b'{"device_id": "bp-3", "seq": 17, "time": "2024-05-01T09:30:00", '
...                      b'"kind": "blood_pressure", "measurements": ['
...                      b'{"code": "8480-6", "value": 16.0, "unit": "kPa"}]}')
>>> msg.device_id, msg.seq, msg.measurement.observations[0].value
('bp-3', 17, 120.0)

The schema is strict: unknown fields, unknown LOINC codes and units that cannot be
converted to the code's canonical unit are rejected with a typed
:class:`~drivers.errors.FrameError`, never silently dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import msgspec

from drivers.base import Event, Measurement
from drivers.errors import FrameError, InvalidValue, OverlongFrame, TruncatedFrame
from protocol.codes import CODES
from protocol.errors import UnitError
from protocol.model import ReadingKind
from protocol.units import to_canonical

#: a message longer than this is rejected before parsing
MAX_MESSAGE_BYTES = 4096


class MalformedMessage(FrameError):
    """The payload is not a JSON document."""

    reason = "malformed"


class SchemaError(FrameError):
    """The JSON does not follow the message schema (missing/unknown field, wrong type, bad topic)."""

    reason = "schema"


class UnknownCode(InvalidValue):
    """An observation code that is not in :data:`protocol.codes.CODES`."""

    reason = "unknown_code"


class UnknownUnit(InvalidValue):
    """A unit that cannot be converted to the canonical unit of its code."""

    reason = "unknown_unit"


_Text = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_DeviceId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
_Time = Annotated[str, msgspec.Meta(
    pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?$")]


class Item(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One value: LOINC ``code``, ``value`` in ``unit`` (any spelling protocol.units knows)."""

    code: _Text
    value: float
    unit: Annotated[str, msgspec.Meta(max_length=32)]


class Message(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The wire schema of one message."""

    device_id: _DeviceId
    seq: Annotated[int, msgspec.Meta(ge=0, le=2**53)]  #: the device's message counter
    time: _Time  #: the device's clock, ISO 8601
    measurements: Annotated[list[Item], msgspec.Meta(min_length=1, max_length=64)]
    kind: ReadingKind = "generic"
    status: Annotated[list[_Text], msgspec.Meta(max_length=32)] = []


_decoder = msgspec.json.Decoder(Message)

#: the message of docs/fieldbus.md §2
EXAMPLES: tuple[bytes, ...] = (
    b'{"device_id": "bp-3", "seq": 17, "time": "2024-05-01T09:30:00", "kind": "blood_pressure", '
    b'"measurements": [{"code": "8480-6", "value": 120, "unit": "mm[Hg]"}, '
    b'{"code": "8462-4", "value": 80, "unit": "mmHg"}], "status": ["irregular_pulse"]}',
)


@dataclass(frozen=True, slots=True)
class DeviceMessage:
    """A decoded message: who sent it, its counter, and the measurement."""

    device_id: str
    seq: int
    time: str
    measurement: Measurement

    @property
    def key(self) -> tuple[str, int, str]:
        """Identity used to drop QoS 1 redeliveries (the counter restarts when a device reboots)."""
        return (self.device_id, self.seq, self.time)


def decode_message(payload: bytes) -> DeviceMessage:
    """Decode one MQTT payload; raises a :class:`FrameError` subclass on any problem."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise OverlongFrame(f"message of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}",
                            payload[:MAX_MESSAGE_BYTES])
    if not payload.strip():
        raise TruncatedFrame("empty message", payload)
    try:
        msg = _decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise SchemaError(f"message does not follow the schema: {exc}", payload) from exc
    except msgspec.DecodeError as exc:
        if "truncated" in str(exc):
            raise TruncatedFrame(f"message ends early: {exc}", payload) from exc
        raise MalformedMessage(f"message is not JSON: {exc}", payload) from exc
    try:
        datetime.fromisoformat(msg.time.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SchemaError(f"time {msg.time!r} is not a real date and time", payload) from exc
    observations = []
    for i, item in enumerate(msg.measurements):
        if item.code not in CODES:
            raise UnknownCode(f"measurements[{i}].code {item.code!r} is not a known observation code", payload)
        if not math.isfinite(item.value):
            raise InvalidValue(f"measurements[{i}].value is not a finite number", payload)
        try:
            observations.append(to_canonical(item.code, item.value, item.unit))
        except UnitError as exc:
            raise UnknownUnit(f"measurements[{i}].unit: {exc}", payload) from exc
    measurement = Measurement(kind=msg.kind, observations=tuple(observations), device_time=msg.time,
                              status=tuple(msg.status), raw=payload)
    return DeviceMessage(msg.device_id, msg.seq, msg.time, measurement)


def decode_measurements(payload: bytes) -> list[Event]:
    """``mchub decode mqtt-json``: the measurement of one payload."""
    return [decode_message(payload).measurement]

