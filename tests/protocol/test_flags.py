"""Adult clinical classes (中国高血压防治指南 2018 / 2022, WS/T 428-2013; docs/clinical.md)."""

from __future__ import annotations

import pytest

from protocol import codes
from protocol.clinical.interpret import flag_observations
from protocol.flags import (
    GUIDELINE_2022,
    BmiClass,
    BpClass,
    bmi,
    classify_bmi,
    classify_bp,
    temperature_flag,
)
from protocol.model import Observation


@pytest.mark.parametrize(
    ("sys", "dia", "cls", "flag"),
    [
        (115, 75, BpClass.NORMAL, "N"),
        (120, 75, BpClass.HIGH_NORMAL, "N"),
        (118, 85, BpClass.HIGH_NORMAL, "N"),
        (145, 85, BpClass.GRADE_1, "H"),
        (135, 95, BpClass.GRADE_1, "H"),
        (165, 95, BpClass.GRADE_2, "H"),  # different grades: the higher wins
        (150, 105, BpClass.GRADE_2, "H"),
        (185, 80, BpClass.GRADE_3, "HH"),
        (139, 112, BpClass.GRADE_3, "HH"),
        (85, 55, BpClass.LOW, "L"),
    ],
)
def test_bp_classes_2018(sys: float, dia: float, cls: BpClass, flag: str) -> None:
    result = classify_bp(sys, dia)
    assert (result.bp_class, result.flag) == (cls, flag)


def test_isolated_systolic() -> None:
    assert classify_bp(150, 85).isolated_systolic
    assert not classify_bp(150, 95).isolated_systolic


def test_thresholds_are_configurable() -> None:
    assert classify_bp(132, 78, GUIDELINE_2022).bp_class is BpClass.GRADE_1
    assert classify_bp(132, 78).bp_class is BpClass.HIGH_NORMAL


@pytest.mark.parametrize(("value", "cls"), [(18.4, BmiClass.UNDERWEIGHT), (18.5, BmiClass.NORMAL),
                                            (23.9, BmiClass.NORMAL), (24.0, BmiClass.OVERWEIGHT),
                                            (27.9, BmiClass.OVERWEIGHT), (28.0, BmiClass.OBESE)])
def test_bmi_classes(value: float, cls: BmiClass) -> None:
    assert classify_bmi(value)[0] is cls


def test_bmi_and_temperature() -> None:
    assert bmi(70, 175) == 22.9
    assert [temperature_flag(t) for t in (36.5, 37.3, 39.2, 34.0)] == ["N", "H", "HH", "L"]


def test_flag_observations_sets_bp_and_implausible_flags() -> None:
    obs = (
        Observation(code=codes.SYSTOLIC, value=150, unit="mm[Hg]"),
        Observation(code=codes.DIASTOLIC, value=95, unit="mm[Hg]"),
        Observation(code=codes.PULSE, value=400, unit="/min"),
    )
    flagged = flag_observations(obs)
    assert [o.flag for o in flagged] == ["H", "H", "A"]
