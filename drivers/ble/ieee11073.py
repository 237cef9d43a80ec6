"""IEEE 11073-20601 SFLOAT (16 bit) and FLOAT (32 bit) numbers, as the Bluetooth health
profiles put them on the wire (little-endian).

    value = mantissa x 10 ** exponent

SFLOAT: bits 15..12 exponent (4-bit two's complement), bits 11..0 mantissa (12-bit two's
complement). FLOAT: bits 31..24 exponent (signed 8 bit), bits 23..0 mantissa (signed 24
bit). There is **no exponent bias** (at least one public Python library adds one and reads
``78 80`` as 120 instead of 120e-8). Five raw values are special and decode to
:class:`Special` instead of a number.

>>> sfloat(0xF0BD)
18.9
>>> float32(0xFE000EB0)
37.6
>>> sfloat(0x07FF)
<Special.NAN: 'NaN'>
"""

from __future__ import annotations

from enum import Enum


class Special(Enum):
    """The reserved values of IEEE 11073-20601 (a device's way of saying 'no number')."""

    NAN = "NaN"  #: not a number (measurement invalid)
    NRES = "NRes"  #: not at this resolution (value cannot be represented)
    POS_INF = "+INF"  #: above the device's range
    NEG_INF = "-INF"  #: below the device's range
    RESERVED = "reserved"  #: reserved for future use

    @property
    def code(self) -> str:
        """Short lower-case identifier used in status strings (``nan``, ``nres``, ``pos_inf``...)."""
        return self.name.lower()


SFLOAT_SPECIAL: dict[int, Special] = {
    0x07FF: Special.NAN,
    0x0800: Special.NRES,
    0x07FE: Special.POS_INF,
    0x0802: Special.NEG_INF,
    0x0801: Special.RESERVED,
}

FLOAT_SPECIAL: dict[int, Special] = {
    0x007FFFFF: Special.NAN,
    0x00800000: Special.NRES,
    0x007FFFFE: Special.POS_INF,
    0x00800002: Special.NEG_INF,
    0x00800001: Special.RESERVED,
}


def _scale(mantissa: int, exponent: int) -> float:
    # Integer arithmetic, then one correctly rounded division: 189 x 10^-1 is exactly the
    # float nearest 18.9 (multiplying by 0.1 would not be).
    if exponent >= 0:
        return float(mantissa * 10**exponent)
    divisor: int = 10**-exponent
    return mantissa / divisor


def sfloat(raw: int) -> float | Special:
    """Decode a 16-bit SFLOAT given as an unsigned integer (0..0xFFFF)."""
    if not 0 <= raw <= 0xFFFF:
        raise ValueError(f"SFLOAT is 16 bits, got {raw:#x}")
    special = SFLOAT_SPECIAL.get(raw)
    if special is not None:
        return special
    mantissa = raw & 0x0FFF
    if mantissa >= 0x0800:
        mantissa -= 0x1000
    exponent = raw >> 12
    if exponent >= 0x8:
        exponent -= 0x10
    return _scale(mantissa, exponent)


def float32(raw: int) -> float | Special:
    """Decode a 32-bit FLOAT given as an unsigned integer (0..0xFFFFFFFF)."""
    if not 0 <= raw <= 0xFFFFFFFF:
        raise ValueError(f"FLOAT is 32 bits, got {raw:#x}")
    special = FLOAT_SPECIAL.get(raw)
    if special is not None:
        return special
    mantissa = raw & 0x00FFFFFF
    if mantissa >= 0x00800000:
        mantissa -= 0x01000000
    exponent = raw >> 24
    if exponent >= 0x80:
        exponent -= 0x100
    return _scale(mantissa, exponent)
