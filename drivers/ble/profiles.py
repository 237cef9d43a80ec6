"""The four Bluetooth SIG health profiles mchub drives: GATT UUIDs and codecs.

``kind`` doubles as the driver kind in hub configuration (``kind = "ble-bp"``) and as the
codec name for ``mchub decode``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drivers.base import Measurement
from drivers.ble.body_composition import decode_body_composition
from drivers.ble.bp import decode_bp, decode_icp
from drivers.ble.thermometer import decode_temperature
from drivers.ble.weight import decode_weight


def uuid16(short: int) -> str:
    """The 128-bit form of a 16-bit Bluetooth SIG UUID, lower case as bleak reports it."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


#: Record Access Control Point characteristic
RACP = uuid16(0x2A52)


@dataclass(frozen=True)
class Profile:
    """One device family: the service to scan for, the characteristic(s) to subscribe to."""

    kind: str
    title: str
    service: str
    measurement: str  #: indicated characteristic carrying stored/final measurements
    decode: Callable[[bytes], Measurement]
    #: optional characteristics with live values (intermediate cuff pressure)
    live: tuple[tuple[str, Callable[[bytes], Measurement]], ...] = ()


BLOOD_PRESSURE = Profile(
    "ble-bp", "Blood Pressure", uuid16(0x1810), uuid16(0x2A35), decode_bp,
    live=((uuid16(0x2A36), decode_icp),),
)
THERMOMETER = Profile("ble-thermometer", "Health Thermometer", uuid16(0x1809), uuid16(0x2A1C), decode_temperature)
WEIGHT_SCALE = Profile("ble-weight", "Weight Scale", uuid16(0x181D), uuid16(0x2A9D), decode_weight)
BODY_COMPOSITION = Profile(
    "ble-body-composition", "Body Composition", uuid16(0x181B), uuid16(0x2A9C), decode_body_composition,
)

PROFILES: dict[str, Profile] = {p.kind: p for p in (BLOOD_PRESSURE, THERMOMETER, WEIGHT_SCALE, BODY_COMPOSITION)}
