"""Pregnancy: plausible gestational weeks, blood pressure in pregnancy, gestational weight gain.

Blood pressure (Chinese guideline on hypertensive disorders in pregnancy, 中华医学会妇产科学分会
妊娠期高血压疾病学组《妊娠期高血压疾病诊治指南（2020）》; ../shared/reference/clinical.md):
  * >= 160 and/or >= 110 mmHg is severe-range at ANY gestational age: the patient sees a
    nurse now and the status page and dashboard raise an alarm (``urgent``);
  * >= 140 and/or >= 90 mmHg from week 20 is hypertension in pregnancy (gestational
    hypertension / pre-eclampsia must be ruled out);
  * >= 140 and/or >= 90 mmHg before week 20 is hypertension found in pregnancy (chronic
    hypertension until shown otherwise); both go to a nurse the same day.

Gestational weight gain: WS/T 801-2022《妊娠期妇女体重增长推荐值标准》, table 1 (single
pregnancy; pre-pregnancy BMI classes of WS/T 428-2013): total gain, gain in the first
trimester (to 13+6 weeks) and the weekly gain in the second and third trimesters.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol.errors import ClinicalError
from protocol.model import Flag

MAX_WEEKS = 44  #: beyond 42 weeks is post-term; 45 or more is a typing error, refused
FIRST_TRIMESTER_END_WEEKS = 14  #: WS/T 801-2022: "妊娠早期" is up to 13+6 weeks

SOURCE_BP = "妊娠期高血压疾病诊治指南（2020）(Chinese Society of Obstetrics and Gynecology)"
SOURCE_GWG = "WS/T 801-2022 妊娠期妇女体重增长推荐值标准, table 1"


def check_weeks(weeks: int | None) -> int | None:
    """The pregnancy weeks if plausible (1-44), None when not pregnant; raise ClinicalError otherwise."""
    if weeks is None:
        return None
    if isinstance(weeks, bool) or not isinstance(weeks, int) or not 1 <= weeks <= MAX_WEEKS:
        raise ClinicalError(f"{weeks!r} pregnancy weeks is not plausible (1-{MAX_WEEKS}); check the number entered",
                            key="clinical.weeks_implausible")
    return weeks


class PregnancyBp(StrEnum):
    NORMAL = "normal"
    HYPERTENSION_BEFORE_20 = "hypertension_before_20"
    HYPERTENSION = "pregnancy_hypertension"
    SEVERE = "pregnancy_severe"
    LOW = "low"


@dataclass(frozen=True, slots=True)
class PregnancyBpResult:
    bp_class: PregnancyBp
    flag: Flag
    urgent: bool
    source: str = SOURCE_BP


def classify_bp(systolic: float, diastolic: float, weeks: int) -> PregnancyBpResult:
    """Blood pressure of a pregnant woman at ``weeks`` (already checked with :func:`check_weeks`)."""
    if systolic >= 160 or diastolic >= 110:
        return PregnancyBpResult(PregnancyBp.SEVERE, "HH", True)
    if systolic >= 140 or diastolic >= 90:
        cls = PregnancyBp.HYPERTENSION if weeks >= 20 else PregnancyBp.HYPERTENSION_BEFORE_20
        return PregnancyBpResult(cls, "H", False)
    if systolic < 90 or diastolic < 60:
        return PregnancyBpResult(PregnancyBp.LOW, "L", False)
    return PregnancyBpResult(PregnancyBp.NORMAL, "N", False)


class PrePregnancyBmi(StrEnum):
    """WS/T 428-2013 adult classes, as WS/T 801-2022 uses them."""

    UNDERWEIGHT = "underweight"  # < 18.5
    NORMAL = "normal"  # 18.5 - < 24.0
    OVERWEIGHT = "overweight"  # 24.0 - < 28.0
    OBESE = "obese"  # >= 28.0


@dataclass(frozen=True, slots=True)
class GainRecommendation:
    """One row of WS/T 801-2022 table 1 (kg)."""

    bmi_class: PrePregnancyBmi
    total: tuple[float, float]
    first_trimester: tuple[float, float]
    weekly_mean: float
    weekly: tuple[float, float]


#: WS/T 801-2022 table 1, row by row
GAIN_TABLE: dict[PrePregnancyBmi, GainRecommendation] = {
    r.bmi_class: r for r in (
        GainRecommendation(PrePregnancyBmi.UNDERWEIGHT, (11.0, 16.0), (0.0, 2.0), 0.46, (0.37, 0.56)),
        GainRecommendation(PrePregnancyBmi.NORMAL, (8.0, 14.0), (0.0, 2.0), 0.37, (0.26, 0.48)),
        GainRecommendation(PrePregnancyBmi.OVERWEIGHT, (7.0, 11.0), (0.0, 2.0), 0.30, (0.22, 0.37)),
        GainRecommendation(PrePregnancyBmi.OBESE, (5.0, 9.0), (0.0, 2.0), 0.22, (0.15, 0.30)),
    )
}


def pre_pregnancy_class(bmi: float) -> PrePregnancyBmi:
    if bmi < 18.5:
        return PrePregnancyBmi.UNDERWEIGHT
    if bmi < 24.0:
        return PrePregnancyBmi.NORMAL
    if bmi < 28.0:
        return PrePregnancyBmi.OVERWEIGHT
    return PrePregnancyBmi.OBESE


class GainClass(StrEnum):
    BELOW = "below"
    WITHIN = "within"
    ABOVE = "above"


@dataclass(frozen=True, slots=True)
class GainResult:
    gain_kg: float
    expected: tuple[float, float]  #: the recommended cumulative gain at this week, kg
    gain_class: GainClass
    flag: Flag
    bmi_class: PrePregnancyBmi
    source: str = SOURCE_GWG


def expected_gain(bmi_class: PrePregnancyBmi, weeks: int) -> tuple[float, float]:
    """The recommended cumulative gain range at ``weeks`` (first-trimester range, then + weekly range)."""
    row = GAIN_TABLE[bmi_class]
    if weeks < FIRST_TRIMESTER_END_WEEKS:
        return row.first_trimester
    extra = weeks - FIRST_TRIMESTER_END_WEEKS
    low = row.first_trimester[0] + row.weekly[0] * extra
    high = row.first_trimester[1] + row.weekly[1] * extra
    return round(low, 2), round(high, 2)


def weight_gain(pre_pregnancy_weight_kg: float, height_cm: float, weight_kg: float, weeks: int) -> GainResult:
    """Compare the gain so far with WS/T 801-2022 for this woman's pre-pregnancy BMI class."""
    if pre_pregnancy_weight_kg <= 0 or height_cm <= 0:
        raise ClinicalError("pre-pregnancy weight and height must be positive", key="clinical.gain_inputs")
    bmi = pre_pregnancy_weight_kg / (height_cm / 100) ** 2
    cls = pre_pregnancy_class(bmi)
    gain = round(weight_kg - pre_pregnancy_weight_kg, 2)
    low, high = expected_gain(cls, weeks)
    if gain < low:
        return GainResult(gain, (low, high), GainClass.BELOW, "L", cls)
    if gain > high:
        return GainResult(gain, (low, high), GainClass.ABOVE, "H", cls)
    return GainResult(gain, (low, high), GainClass.WITHIN, "N", cls)
