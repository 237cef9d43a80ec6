"""Clinical classes and observation flags (../shared/reference/clinical.md).

Thresholds are data (:class:`BpThresholds`), so a deployment can follow the 2018
Chinese hypertension guideline (default) or the 2022 practice guideline (130/80).

Flag mapping used everywhere (HL7 OBX-8 compatible):
    N normal · H high · HH critically high · L low · LL critically low · A implausible value
Blood pressure: normal and high-normal -> N, grade 1-2 -> H, grade 3 -> HH, hypotension
(< 90/60) -> L. BMI: underweight -> L, overweight and obese -> H. Temperature: >= 37.3 Cel
-> H, >= 39.0 -> HH, < 35.0 -> L.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import msgspec

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
    # pregnancy (after 20 weeks)
    PREGNANCY_HYPERTENSION = "pregnancy_hypertension"
    PREGNANCY_SEVERE = "pregnancy_severe"


@dataclass(frozen=True, slots=True)
class BpThresholds:
    """Lower bounds (inclusive) of each class, systolic / diastolic, in mm[Hg]."""

    high_normal: tuple[float, float] = (120, 80)
    grade_1: tuple[float, float] = (140, 90)
    grade_2: tuple[float, float] = (160, 100)
    grade_3: tuple[float, float] = (180, 110)
    low: tuple[float, float] = (90, 60)  #: below either value is hypotension
    pregnancy: tuple[float, float] = (140, 90)
    pregnancy_severe: tuple[float, float] = (160, 110)


GUIDELINE_2018 = BpThresholds()
GUIDELINE_2022 = BpThresholds(high_normal=(120, 80), grade_1=(130, 80))


@dataclass(frozen=True, slots=True)
class BpResult:
    """Outcome of :func:`classify_bp`."""

    bp_class: BpClass
    isolated_systolic: bool
    flag: Flag


def classify_bp(
    systolic: float, diastolic: float, t: BpThresholds = GUIDELINE_2018, pregnant_weeks: int | None = None
) -> BpResult:
    """Classify one adult BP measurement; when the two values fall in different grades the higher wins."""
    isolated = systolic >= t.grade_1[0] and diastolic < t.grade_1[1]
    if pregnant_weeks is not None and pregnant_weeks >= 20:
        if systolic >= t.pregnancy_severe[0] or diastolic >= t.pregnancy_severe[1]:
            return BpResult(BpClass.PREGNANCY_SEVERE, isolated, "HH")
        if systolic >= t.pregnancy[0] or diastolic >= t.pregnancy[1]:
            return BpResult(BpClass.PREGNANCY_HYPERTENSION, isolated, "H")
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


def flag_observations(
    observations: tuple[Observation, ...],
    t: BpThresholds = GUIDELINE_2018,
    pregnant_weeks: int | None = None,
) -> tuple[Observation, ...]:
    """Return the observations with ``flag`` set from the rules above.

    Implausible values get ``A``; systolic and diastolic share the flag of their BP class.
    """
    by_code = {o.code: o for o in observations}
    bp_flag: Flag | None = None
    sys_, dia = by_code.get(codes.SYSTOLIC), by_code.get(codes.DIASTOLIC)
    if sys_ is not None and dia is not None and plausible(sys_) and plausible(dia):
        bp_flag = classify_bp(sys_.value, dia.value, t, pregnant_weeks).flag
    out = []
    for o in observations:
        flag: Flag | None = o.flag
        if not plausible(o):
            flag = "A"
        elif o.code in (codes.SYSTOLIC, codes.DIASTOLIC) and bp_flag is not None:
            flag = bp_flag
        elif o.code == codes.BMI:
            flag = classify_bmi(o.value)[1]
        elif o.code == codes.TEMPERATURE:
            flag = temperature_flag(o.value)
        elif o.code == codes.PULSE:
            flag = "H" if o.value > 100 else "L" if o.value < 60 else "N"
        out.append(o if flag == o.flag else msgspec.structs.replace(o, flag=flag))
    return tuple(out)

