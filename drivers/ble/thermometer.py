"""Temperature Measurement (0x2A1C, Health Thermometer Service 0x1809) codec.

Layout::

    flags u8 | temperature FLOAT | [time stamp 7 bytes, flag b1] | [type u8, flag b2]

flags b0 is the unit (0 Celsius, 1 Fahrenheit); the value is converted to Cel with the
original kept. The temperature type (measurement site) is reported in ``status`` as
``site_<name>`` (``site_armpit``, ``site_tympanum``...; ``site_unknown_<n>`` for a code
the spec does not define). A special temperature value rejects the frame.
"""

from __future__ import annotations

from drivers.base import Event, Measurement
from drivers.ble.reader import Reader, required
from protocol import codes
from protocol.units import to_canonical

FAHRENHEIT = 0x01
TIME_STAMP = 0x02
TEMPERATURE_TYPE = 0x04

SITES: dict[int, str] = {
    1: "armpit",
    2: "body",
    3: "ear_lobe",
    4: "finger",
    5: "gi_tract",
    6: "mouth",
    7: "rectum",
    8: "toe",
    9: "tympanum",
}

_NAME = "temperature measurement"


def decode_temperature(data: bytes) -> Measurement:
    """Decode one Temperature Measurement value; raises FrameError."""
    raw = bytes(data)
    r = Reader(raw, _NAME)
    flags = r.u8("flags")
    value = r.float32("temperature")
    device_time = r.date_time() if flags & TIME_STAMP else None
    site = r.u8("temperature type") if flags & TEMPERATURE_TYPE else None
    r.finish()
    status: list[str] = []
    if flags & TIME_STAMP and device_time is None:
        status.append("device_time_unknown")
    if site is not None:
        status.append(f"site_{SITES.get(site, f'unknown_{site}')}")
    unit = "[degF]" if flags & FAHRENHEIT else "Cel"
    obs = to_canonical(codes.TEMPERATURE, required(value, "temperature", _NAME, raw), unit)
    return Measurement(kind="temperature", observations=(obs,), device_time=device_time,
                       status=tuple(status), raw=raw)


def decode_temperature_frame(data: bytes) -> list[Event]:
    """Registry form of :func:`decode_temperature`."""
    return [decode_temperature(data)]
