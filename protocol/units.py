"""Conversion of device units to the canonical UCUM unit of each observation code.

>>> obs = to_canonical("8480-6", 16.0, "kPa")
>>> obs.value, obs.unit, obs.original_value, obs.original_unit
(120.0, 'mm[Hg]', 16.0, 'kPa')
"""

from __future__ import annotations

from collections.abc import Callable

from protocol.codes import code
from protocol.errors import UnitError
from protocol.model import Flag, Observation

MMHG_PER_KPA = 7.500616827  # 1 kPa = 1000 Pa / 133.322387415 Pa
KG_PER_LB = 0.45359237
CM_PER_IN = 2.54

#: (from unit, canonical unit) -> converter
_CONVERT: dict[tuple[str, str], Callable[[float], float]] = {
    ("kPa", "mm[Hg]"): lambda v: v * MMHG_PER_KPA,
    ("[degF]", "Cel"): lambda v: (v - 32.0) * 5.0 / 9.0,
    ("[lb_av]", "kg"): lambda v: v * KG_PER_LB,
    ("g", "kg"): lambda v: v / 1000.0,
    ("[in_i]", "cm"): lambda v: v * CM_PER_IN,
    ("m", "cm"): lambda v: v * 100.0,
    ("mm", "cm"): lambda v: v / 10.0,
    ("[lb_av]/[in_i]2", "kg/m2"): lambda v: v * KG_PER_LB / (CM_PER_IN / 100.0) ** 2,
    ("{beats}/min", "/min"): lambda v: v,
}

#: spellings devices and manuals use -> UCUM
ALIASES: dict[str, str] = {
    "mmHg": "mm[Hg]", "mmhg": "mm[Hg]", "kpa": "kPa",
    "C": "Cel", "°C": "Cel", "degC": "Cel", "F": "[degF]", "°F": "[degF]", "degF": "[degF]",
    "lb": "[lb_av]", "lbs": "[lb_av]", "in": "[in_i]", "inch": "[in_i]",
    "bpm": "/min", "1/min": "/min", "kg/m^2": "kg/m2", "kg/m²": "kg/m2",
}


def ucum(unit: str) -> str:
    """Normalise a device's spelling of a unit to UCUM (``mmHg`` -> ``mm[Hg]``)."""
    return ALIASES.get(unit, unit)


def convert(value: float, unit: str, canonical: str) -> float:
    """Convert ``value`` from ``unit`` (any known spelling) to ``canonical``."""
    unit = ucum(unit)
    if unit == canonical:
        return value
    try:
        return _CONVERT[(unit, canonical)](value)
    except KeyError:
        raise UnitError(f"cannot convert {unit!r} to {canonical!r}") from None


def to_canonical(loinc: str, value: float, unit: str, flag: Flag | None = None) -> Observation:
    """Build an Observation in the canonical unit of ``loinc``, keeping the original value and unit."""
    try:
        info = code(loinc)
    except KeyError as exc:
        raise UnitError(str(exc)) from None
    original_unit = ucum(unit)
    if original_unit == info.unit:
        return Observation(code=loinc, value=value, unit=info.unit, flag=flag)
    # one decimal more than the display precision, so a round trip loses nothing visible
    canonical = round(convert(value, original_unit, info.unit), info.decimals + 1)
    return Observation(
        code=loinc, value=canonical, unit=info.unit,
        original_value=value, original_unit=original_unit, flag=flag,
    )
