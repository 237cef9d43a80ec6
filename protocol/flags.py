"""Clinical classes and observation flags (../shared/reference/clinical.md).

Thresholds are data (:class:`BpThresholds`), so a deployment can follow the 2018
Chinese hypertension guideline (default) or the 2022 practice guideline (130/80).

These are the ADULT rules; who was measured decides which rules apply, and
:func:`protocol.clinical.interpret.flag_observations` sets a record's flags from them.

Flag mapping used everywhere (HL7 OBX-8 compatible):
    N normal · H high · HH critically high · L low · LL critically low · A implausible value
Blood pressure: normal and high-normal -> N, grade 1-2 -> H, grade 3 -> HH, hypotension
(< 90/60) -> L. BMI: underweight -> L, overweight and obese -> H. Temperature: >= 37.3 Cel
-> H, >= 39.0 -> HH, < 35.0 -> L.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol import codes
from protocol.model import Flag, Observation


class BpClass(StrEnum):
    """Adult blood-pressure class; ``value`` is a stable identifier."""

    LOW = "low"
    NORMAL = "normal"
    HIGH_NORMAL = "high_normal"
    GRADE_1 = "grade_1"
    GRADE_2 = "grade_2"
    GRADE_3 = "grade_3"


@dataclass(frozen=True, slots=True)
class BpThresholds:
    """Lower bounds (inclusive) of each class, systolic / diastolic, in mm[Hg]."""

    high_normal: tuple[float, float] = (120, 80)
    grade_1: tuple[float, float] = (140, 90)
    grade_2: tuple[float, float] = (160, 100)
    grade_3: tuple[float, float] = (180, 110)
    low: tuple[float, float] = (90, 60)  #: below either value is hypotension


GUIDELINE_2018 = BpThresholds()
GUIDELINE_2022 = BpThresholds(high_normal=(120, 80), grade_1=(130, 80))


@dataclass(frozen=True, slots=True)
class BpResult:
    """Outcome of :func:`classify_bp`."""

    bp_class: BpClass
    isolated_systolic: bool
    flag: Flag


def classify_bp(systolic: float, diastolic: float, t: BpThresholds = GUIDELINE_2018) -> BpResult:
    """Classify one ADULT BP measurement; when the two values fall in different grades the higher wins.

    Pregnancy has its own classes (:func:`protocol.clinical.pregnancy.classify_bp`).
    """
    isolated = systolic >= t.grade_1[0] and diastolic < t.grade_1[1]
    for bound, cls, flag in (
        (t.grade_3, BpClass.GRADE_3, "HH"),
        (t.grade_2, BpClass.GRADE_2, "H"),
        (t.grade_1, BpClass.GRADE_1, "H"),
        (t.high_normal, BpClass.HIGH_NORMAL, "N"),
    ):
        if systolic >= bound[0] or diastolic >= bound[1]:
            return BpResult(cls, isolated, flag)  # type: ignore[arg-type]
    if systolic < t.low[0] or diastolic < t.low[1]:
        return BpResult(BpClass.LOW, False, "L")
    return BpResult(BpClass.NORMAL, False, "N")


class BmiClass(StrEnum):
    """Adult BMI class (China)."""

    UNDERWEIGHT = "underweight"
    NORMAL = "normal"
    OVERWEIGHT = "overweight"
    OBESE = "obese"


def classify_bmi(bmi: float) -> tuple[BmiClass, Flag]:
    """Chinese adult BMI classes: < 18.5, 18.5-23.9, 24-27.9, >= 28."""
    if bmi < 18.5:
        return BmiClass.UNDERWEIGHT, "L"
    if bmi < 24.0:
        return BmiClass.NORMAL, "N"
    if bmi < 28.0:
        return BmiClass.OVERWEIGHT, "H"
    return BmiClass.OBESE, "H"


FEVER_CEL = 37.3


def temperature_flag(celsius: float) -> Flag:
    """>= 37.3 fever (H), >= 39.0 high fever (HH), < 35.0 hypothermia (L)."""
    if celsius >= 39.0:
        return "HH"
    if celsius >= FEVER_CEL:
        return "H"
    if celsius < 35.0:
        return "L"
    return "N"


def bmi(weight_kg: float, height_cm: float) -> float:
    """Body mass index in kg/m2, one decimal."""
    if height_cm <= 0:
        raise ValueError("height must be positive")
    return round(weight_kg / (height_cm / 100.0) ** 2, 1)


def plausible(obs: Observation) -> bool:
    """True when the value lies within the plausible range of its code (unknown codes pass)."""
    info = codes.CODES.get(obs.code)
    return info is None or info.low <= obs.value <= info.high
