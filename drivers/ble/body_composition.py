"""Body Composition Measurement (0x2A9C, Body Composition Service 0x181B) codec.

Layout: flags u16, body fat percentage u16 (0.1 %, always present), then in flag order::

    b1 time stamp (7) · b2 user id u8 · b3 basal metabolism u16 (kJ) · b4 muscle % u16 (0.1 %)
    · b5 muscle mass · b6 fat-free mass · b7 soft lean mass · b8 body water mass
    · b9 impedance u16 (0.1 Ohm) · b10 weight · b11 height

Masses are 0.005 kg (SI) or 0.01 lb (imperial, flag b0) and are converted to kg with the
original kept; height 0.001 m or 0.1 in. Flag b12 ("multiple packets") means the device
split one measurement over several indications; each packet is decoded on its own and
carries the status ``multiple_packet``. Body fat ``0xFFFF`` means "measurement
unsuccessful" (:class:`~drivers.ble.errors.MeasurementUnsuccessful`).

LOINC codes for the body-composition components other than body fat, weight and height
were not confirmed, so they travel under local ``mchub-*`` codes (below, defined in
:mod:`protocol.codes` with their units, so the cloud accepts them), like the cuff pressure.
"""

from __future__ import annotations

from collections.abc import Callable

from drivers.base import Event, Measurement
from drivers.ble.errors import MeasurementUnsuccessful
from drivers.ble.reader import Reader
from drivers.ble.weight import height, mass
from protocol import codes
from protocol.model import Observation
from protocol.units import convert, to_canonical

BASAL_METABOLISM = codes.BASAL_METABOLISM  #: kJ
MUSCLE_PERCENTAGE = codes.MUSCLE_PERCENTAGE  #: %
MUSCLE_MASS = codes.MUSCLE_MASS  #: kg
FAT_FREE_MASS = codes.FAT_FREE_MASS  #: kg
SOFT_LEAN_MASS = codes.SOFT_LEAN_MASS  #: kg
BODY_WATER_MASS = codes.BODY_WATER_MASS  #: kg
IMPEDANCE = codes.IMPEDANCE  #: Ohm

IMPERIAL = 0x0001
TIME_STAMP = 0x0002
USER_ID = 0x0004
MULTIPLE_PACKET = 0x1000

UNSUCCESSFUL = 0xFFFF
_NAME = "body composition measurement"


def _mass_obs(loinc: str) -> Callable[[int, bool], Observation]:
    def build(raw: int, imperial: bool) -> Observation:
        value, unit = mass(raw, imperial)
        if unit == "kg":
            return Observation(code=loinc, value=value, unit="kg")
        return Observation(code=loinc, value=round(convert(value, unit, "kg"), 3), unit="kg",
                           original_value=value, original_unit=unit)
    return build


#: optional u16 fields in wire order: (flag bit, field name, builder)
FIELDS: tuple[tuple[int, str, Callable[[int, bool], Observation]], ...] = (
    (0x0008, "basal metabolism", lambda v, _i: Observation(code=BASAL_METABOLISM, value=float(v), unit="kJ")),
    (0x0010, "muscle percentage", lambda v, _i: Observation(code=MUSCLE_PERCENTAGE, value=v / 10, unit="%")),
    (0x0020, "muscle mass", _mass_obs(MUSCLE_MASS)),
    (0x0040, "fat free mass", _mass_obs(FAT_FREE_MASS)),
    (0x0080, "soft lean mass", _mass_obs(SOFT_LEAN_MASS)),
    (0x0100, "body water mass", _mass_obs(BODY_WATER_MASS)),
    (0x0200, "impedance", lambda v, _i: Observation(code=IMPEDANCE, value=v / 10, unit="Ohm")),
    (0x0400, "weight", lambda v, i: to_canonical(codes.WEIGHT, *mass(v, i))),
    (0x0800, "height", lambda v, i: to_canonical(codes.HEIGHT, *height(v, i))),
)


def decode_body_composition(data: bytes) -> Measurement:
    """Decode one Body Composition Measurement value; raises FrameError."""
    raw = bytes(data)
    r = Reader(raw, _NAME)
    flags = r.u16("flags")
    imperial = bool(flags & IMPERIAL)
    fat_raw = r.u16("body fat percentage")
    device_time = r.date_time() if flags & TIME_STAMP else None
    user = r.u8("user id") if flags & USER_ID else None
    values = [(field, build, r.u16(field)) for bit, field, build in FIELDS if flags & bit]
    r.finish()
    if fat_raw == UNSUCCESSFUL:
        raise MeasurementUnsuccessful(f"{_NAME}: measurement unsuccessful (body fat 0xFFFF)", raw)
    status: list[str] = []
    if flags & TIME_STAMP and device_time is None:
        status.append("device_time_unknown")
    if flags & MULTIPLE_PACKET:
        status.append("multiple_packet")
    obs = [to_canonical(codes.BODY_FAT, fat_raw / 10, "%")]
    obs.extend(build(value, imperial) for _field, build, value in values)
    return Measurement(kind="body_composition", observations=tuple(obs), device_time=device_time,
                       status=tuple(status), raw=raw,
                       user_id=None if user is None or user == 0xFF else user)


def decode_body_composition_frame(data: bytes) -> list[Event]:
    """Registry form of :func:`decode_body_composition`."""
    return [decode_body_composition(data)]
