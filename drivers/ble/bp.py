"""Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36) codecs.

Layout (Bluetooth Blood Pressure Service; reference: /work/shared/reference/devices.md)::

    flags u8 | systolic SFLOAT | diastolic SFLOAT | MAP SFLOAT
    [time stamp 7 bytes, flag b1] [pulse SFLOAT, b2] [user id u8, b3] [status u16, b4]

flags b0 is the unit (0 mmHg, 1 kPa); values are converted to mm[Hg] with the original
kept. Intermediate Cuff Pressure has the same layout; only its first value (the current
cuff pressure) is meaningful, so it becomes one live ``cuff_pressure`` observation.

Special values: systolic or diastolic (cuff pressure for 0x2A36) NaN/NRes/INF rejects the
frame (:class:`~drivers.errors.InvalidValue`); a special MAP or pulse rate is left out and
reported in ``status`` (``mean_arterial_pressure_nan``, ``pulse_rate_nres``...), since
many monitors never compute a MAP.
"""

from __future__ import annotations

from drivers.base import Event, Measurement
from drivers.ble.reader import Reader, optional, required
from protocol import codes
from protocol.model import Observation
from protocol.units import to_canonical

UNIT_KPA = 0x01
TIME_STAMP = 0x02
PULSE_RATE = 0x04
USER_ID = 0x08
STATUS = 0x10

#: measurement status bits (u16) -> status string
STATUS_BITS: dict[int, str] = {
    0x0001: "body_movement",
    0x0002: "cuff_too_loose",
    0x0004: "irregular_pulse",
    0x0020: "improper_position",
}
#: bits 3-4: pulse rate range
PULSE_RANGE: dict[int, str | None] = {
    0: None,
    1: "pulse_above_upper_limit",
    2: "pulse_below_lower_limit",
    3: "pulse_range_reserved",
}


def status_strings(bits: int) -> list[str]:
    """Measurement Status bits as stable strings (reserved bits 6-15 are ignored)."""
    out = [name for bit, name in STATUS_BITS.items() if bits & bit]
    pulse = PULSE_RANGE[(bits >> 3) & 0x3]
    if pulse:
        out.append(pulse)
    return out


def _decode(data: bytes, *, cuff: bool) -> Measurement:
    name = "intermediate cuff pressure" if cuff else "blood pressure measurement"
    raw = bytes(data)
    r = Reader(raw, name)
    flags = r.u8("flags")
    unit = "kPa" if flags & UNIT_KPA else "mm[Hg]"
    first = r.sfloat("systolic" if not cuff else "cuff pressure")
    second = r.sfloat("diastolic")
    third = r.sfloat("mean arterial pressure")
    device_time = r.date_time() if flags & TIME_STAMP else None
    pulse = r.sfloat("pulse rate") if flags & PULSE_RATE else None
    user = r.u8("user id") if flags & USER_ID else None
    bits = r.u16("measurement status") if flags & STATUS else 0
    r.finish()

    status: list[str] = []
    if flags & TIME_STAMP and device_time is None:
        status.append("device_time_unknown")
    obs: list[Observation] = []
    if cuff:
        obs.append(to_canonical(codes.CUFF_PRESSURE, required(first, "cuff pressure", name, raw), unit))
    else:
        obs.append(to_canonical(codes.SYSTOLIC, required(first, "systolic", name, raw), unit))
        obs.append(to_canonical(codes.DIASTOLIC, required(second, "diastolic", name, raw), unit))
        mean = optional(third, "mean_arterial_pressure", status)
        if mean is not None:
            obs.append(to_canonical(codes.MEAN_PRESSURE, mean, unit))
    if pulse is not None:
        rate = optional(pulse, "pulse_rate", status)
        if rate is not None:
            obs.append(to_canonical(codes.PULSE, rate, "/min"))
    status.extend(status_strings(bits))
    return Measurement(
        kind="cuff_pressure" if cuff else "blood_pressure",
        observations=tuple(obs),
        device_time=device_time,
        status=tuple(status),
        raw=raw,
        user_id=None if user is None or user == 0xFF else user,
        live=cuff,
    )


def decode_bp(data: bytes) -> Measurement:
    """Decode one Blood Pressure Measurement value; raises FrameError."""
    return _decode(data, cuff=False)


def decode_icp(data: bytes) -> Measurement:
    """Decode one Intermediate Cuff Pressure value (a live reading); raises FrameError."""
    return _decode(data, cuff=True)


def decode_bp_frame(data: bytes) -> list[Event]:
    """Registry form of :func:`decode_bp`."""
    return [decode_bp(data)]


def decode_icp_frame(data: bytes) -> list[Event]:
    """Registry form of :func:`decode_icp`."""
    return [decode_icp(data)]
