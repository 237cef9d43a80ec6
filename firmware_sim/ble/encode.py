"""Bluetooth health-profile values, encoded from the specification (never from mchub's decoder).

IEEE 11073-20601 numbers: ``value = mantissa x 10^exponent`` with no exponent bias;
SFLOAT packs a 4-bit exponent over a 12-bit mantissa, FLOAT an 8-bit exponent over a
24-bit mantissa, both two's complement, little-endian on the wire. The encoder picks the
largest exponent that represents the value exactly (rounding half-even when the mantissa
does not fit), or the exponent it is given, and can emit every special value by name.

>>> sfloat(18.9).hex()
'bdf0'
>>> float32(37.6, exponent=-2).hex()
'b00e00fe'
>>> float32(37.6).hex()
'780100ff'
>>> sfloat("nan").hex()
'ff07'
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

SPECIAL_SFLOAT = {"nan": 0x07FF, "nres": 0x0800, "+inf": 0x07FE, "-inf": 0x0802, "reserved": 0x0801}
SPECIAL_FLOAT = {"nan": 0x007FFFFF, "nres": 0x00800000, "+inf": 0x007FFFFE, "-inf": 0x00800002,
                 "reserved": 0x00800001}

Number = float | int | str  # a str names a special value: nan, nres, +inf, -inf, reserved


def _pack(value: float | int, mantissa_bits: int, exponent_bits: int, fixed: int | None = None) -> int:
    # largest |mantissa| kept clear of the special values (0x7FE..0x802 for SFLOAT)
    m_max = (1 << (mantissa_bits - 1)) - 3
    e_min, e_max = -(1 << (exponent_bits - 1)), (1 << (exponent_bits - 1)) - 1
    d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not d.is_finite():
        raise ValueError(f"{value!r}: use the names 'nan', '+inf', '-inf' for special values")
    if fixed is not None:
        mantissa = int((d.scaleb(-fixed)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        if abs(mantissa) > m_max or not e_min <= fixed <= e_max:
            raise ValueError(f"{value!r} does not fit with exponent {fixed}")
        return ((fixed & ((1 << exponent_bits) - 1)) << mantissa_bits) | (mantissa & ((1 << mantissa_bits) - 1))
    sign, digits, exponent = d.normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
    while abs(mantissa) > m_max or exponent < e_min:
        mantissa = int((Decimal(mantissa) / 10).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        exponent += 1
    while exponent > e_max:
        mantissa *= 10
        exponent -= 1
    if abs(mantissa) > m_max or exponent > e_max:
        raise ValueError(f"{value!r} is out of range for a {mantissa_bits + exponent_bits}-bit IEEE 11073 number")
    if mantissa == 0:
        exponent = 0
    return ((exponent & ((1 << exponent_bits) - 1)) << mantissa_bits) | (mantissa & ((1 << mantissa_bits) - 1))


def sfloat_raw(value: Number, exponent: int | None = None) -> int:
    """The 16-bit SFLOAT for ``value`` (a number or a special value's name)."""
    if isinstance(value, str):
        return SPECIAL_SFLOAT[value]
    return _pack(value, 12, 4, exponent)


def float_raw(value: Number, exponent: int | None = None) -> int:
    """The 32-bit FLOAT for ``value`` (a number or a special value's name)."""
    if isinstance(value, str):
        return SPECIAL_FLOAT[value]
    return _pack(value, 24, 8, exponent)


def sfloat(value: Number, exponent: int | None = None) -> bytes:
    """SFLOAT on the wire (2 bytes, little-endian)."""
    return sfloat_raw(value, exponent).to_bytes(2, "little")


def float32(value: Number, exponent: int | None = None) -> bytes:
    """FLOAT on the wire (4 bytes, little-endian)."""
    return float_raw(value, exponent).to_bytes(4, "little")


def u16(value: int) -> bytes:
    """Unsigned 16-bit little-endian."""
    return value.to_bytes(2, "little")


def date_time(when: dt.datetime | None) -> bytes:
    """Bluetooth Date Time: year u16, month, day, hours, minutes, seconds; all zero = unknown."""
    if when is None:
        return bytes(7)
    return u16(when.year) + bytes([when.month, when.day, when.hour, when.minute, when.second])


def _sf(value: Number) -> bytes:
    # monitors send whole mmHg and beats/min with exponent 0, as in the profile's examples
    return sfloat(value, 0 if isinstance(value, int) else None)


@dataclass
class BloodPressure:
    """A Blood Pressure Measurement (0x2A35) or, with ``cuff=True``, an Intermediate Cuff Pressure (0x2A36)."""

    systolic: Number
    diastolic: Number = "nan"
    mean: Number = "nan"
    kpa: bool = False
    time: dt.datetime | None = None
    time_unknown: bool = False  #: send an all-zero time stamp
    pulse: Number | None = None
    user_id: int | None = None
    status: int | None = None  #: measurement status bits

    def encode(self) -> bytes:
        """The characteristic value."""
        flags = (0x01 if self.kpa else 0) | (0x02 if self.time or self.time_unknown else 0) \
            | (0x04 if self.pulse is not None else 0) | (0x08 if self.user_id is not None else 0) \
            | (0x10 if self.status is not None else 0)
        out = bytes([flags]) + _sf(self.systolic) + _sf(self.diastolic) + _sf(self.mean)
        if flags & 0x02:
            out += date_time(self.time)
        if self.pulse is not None:
            out += _sf(self.pulse)
        if self.user_id is not None:
            out += bytes([self.user_id])
        if self.status is not None:
            out += u16(self.status)
        return out


@dataclass
class Temperature:
    """A Temperature Measurement (0x2A1C)."""

    value: Number
    fahrenheit: bool = False
    time: dt.datetime | None = None
    site: int | None = None  #: 1 armpit ... 9 tympanum

    def encode(self) -> bytes:
        """The characteristic value."""
        flags = (0x01 if self.fahrenheit else 0) | (0x02 if self.time else 0) | (0x04 if self.site is not None else 0)
        out = bytes([flags]) + float32(self.value)
        if self.time:
            out += date_time(self.time)
        if self.site is not None:
            out += bytes([self.site])
        return out


def mass_raw(value: float, imperial: bool) -> int:
    """Weight Scale mass field: 0.005 kg or 0.01 lb steps (0xFFFF = measurement unsuccessful)."""
    return round(Decimal(repr(value)) / (Decimal("0.01") if imperial else Decimal("0.005")))


def height_raw(value: float, imperial: bool) -> int:
    """Weight Scale height field: 0.001 m or 0.1 in steps."""
    return round(Decimal(repr(value)) / (Decimal("0.1") if imperial else Decimal("0.001")))


@dataclass
class Weight:
    """A Weight Measurement (0x2A9D); values in the device's unit system (kg/m or lb/in)."""

    weight: float | None  #: None sends 0xFFFF, "measurement unsuccessful"
    imperial: bool = False
    time: dt.datetime | None = None
    user_id: int | None = None
    bmi: float | None = None  #: with ``height``: both or neither
    height: float | None = None

    def encode(self) -> bytes:
        """The characteristic value."""
        both = self.bmi is not None and self.height is not None
        flags = (0x01 if self.imperial else 0) | (0x02 if self.time else 0) \
            | (0x04 if self.user_id is not None else 0) | (0x08 if both else 0)
        out = bytes([flags]) + u16(0xFFFF if self.weight is None else mass_raw(self.weight, self.imperial))
        if self.time:
            out += date_time(self.time)
        if self.user_id is not None:
            out += bytes([self.user_id])
        if both:
            assert self.bmi is not None and self.height is not None
            out += u16(round(Decimal(repr(self.bmi)) * 10)) + u16(height_raw(self.height, self.imperial))
        return out


#: Body Composition optional u16 fields in wire order: (flag bit, name)
BODY_FIELDS = (
    (0x0008, "basal_metabolism"), (0x0010, "muscle_percentage"), (0x0020, "muscle_mass"),
    (0x0040, "fat_free_mass"), (0x0080, "soft_lean_mass"), (0x0100, "body_water_mass"),
    (0x0200, "impedance"), (0x0400, "weight"), (0x0800, "height"),
)


@dataclass
class BodyComposition:
    """A Body Composition Measurement (0x2A9C); ``fields`` maps BODY_FIELDS names to device values."""

    body_fat: float | None  #: percent; None sends 0xFFFF, "measurement unsuccessful"
    imperial: bool = False
    time: dt.datetime | None = None
    user_id: int | None = None
    fields: dict[str, float] = field(default_factory=dict)
    multiple_packet: bool = False

    def _raw(self, name: str, value: float) -> int:
        if name in ("muscle_mass", "fat_free_mass", "soft_lean_mass", "body_water_mass", "weight"):
            return mass_raw(value, self.imperial)
        if name == "height":
            return height_raw(value, self.imperial)
        if name == "basal_metabolism":
            return round(value)
        return round(Decimal(repr(value)) * 10)  # muscle percentage, impedance: 0.1 steps

    def encode(self) -> bytes:
        """The characteristic value."""
        unknown = set(self.fields) - {name for _bit, name in BODY_FIELDS}
        if unknown:
            raise ValueError(f"unknown body composition fields {sorted(unknown)}")
        flags = (0x0001 if self.imperial else 0) | (0x0002 if self.time else 0) \
            | (0x0004 if self.user_id is not None else 0) | (0x1000 if self.multiple_packet else 0)
        for bit, name in BODY_FIELDS:
            if name in self.fields:
                flags |= bit
        fat = 0xFFFF if self.body_fat is None else round(Decimal(repr(self.body_fat)) * 10)
        out = u16(flags) + u16(fat)
        if self.time:
            out += date_time(self.time)
        if self.user_id is not None:
            out += bytes([self.user_id])
        for _bit, name in BODY_FIELDS:
            if name in self.fields:
                out += u16(self._raw(name, self.fields[name]))
        return out
