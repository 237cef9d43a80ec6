"""Weight Measurement (0x2A9D, Weight Scale Service 0x181D) codec.

Layout::

    flags u8 | weight u16 | [time stamp 7 bytes, b1] | [user id u8, b2]
    | [BMI u16 then height u16, b3]

flags b0: 0 SI (weight 0.005 kg, height 0.001 m), 1 imperial (weight 0.01 lb, height
0.1 in). BMI is 0.1 kg/m2 in both. Weight ``0xFFFF`` means "measurement unsuccessful" and
raises :class:`~drivers.ble.errors.MeasurementUnsuccessful`. Flag bits 4-7 are reserved
and ignored (a frame carrying bytes for them is over-long).
"""

from __future__ import annotations

from drivers.base import Event, Measurement
from drivers.ble.errors import MeasurementUnsuccessful
from drivers.ble.reader import Reader
from protocol import codes
from protocol.model import Observation
from protocol.units import to_canonical

IMPERIAL = 0x01
TIME_STAMP = 0x02
USER_ID = 0x04
BMI_HEIGHT = 0x08

UNSUCCESSFUL = 0xFFFF

_NAME = "weight measurement"


def mass(raw: int, imperial: bool) -> tuple[float, str]:
    """A Weight Scale / Body Composition mass field as (value, UCUM unit)."""
    return (raw / 100, "[lb_av]") if imperial else (raw / 200, "kg")


def height(raw: int, imperial: bool) -> tuple[float, str]:
    """A Weight Scale / Body Composition height field as (value, UCUM unit)."""
    return (raw / 10, "[in_i]") if imperial else (raw / 1000, "m")


def decode_weight(data: bytes) -> Measurement:
    """Decode one Weight Measurement value; raises FrameError."""
    raw = bytes(data)
    r = Reader(raw, _NAME)
    flags = r.u8("flags")
    imperial = bool(flags & IMPERIAL)
    weight_raw = r.u16("weight")
    device_time = r.date_time() if flags & TIME_STAMP else None
    user = r.u8("user id") if flags & USER_ID else None
    bmi_raw = r.u16("BMI") if flags & BMI_HEIGHT else None
    height_raw = r.u16("height") if flags & BMI_HEIGHT else None
    r.finish()
    if weight_raw == UNSUCCESSFUL:
        raise MeasurementUnsuccessful(f"{_NAME}: measurement unsuccessful (weight 0xFFFF)", raw)
    status: list[str] = []
    if flags & TIME_STAMP and device_time is None:
        status.append("device_time_unknown")
    obs: list[Observation] = [to_canonical(codes.WEIGHT, *mass(weight_raw, imperial))]
    if bmi_raw is not None and height_raw is not None:
        obs.append(to_canonical(codes.BMI, bmi_raw / 10, "kg/m2"))
        obs.append(to_canonical(codes.HEIGHT, *height(height_raw, imperial)))
    return Measurement(kind="weight", observations=tuple(obs), device_time=device_time,
                       status=tuple(status), raw=raw,
                       user_id=None if user is None or user == 0xFF else user)


def decode_weight_frame(data: bytes) -> list[Event]:
    """Registry form of :func:`decode_weight`."""
    return [decode_weight(data)]
