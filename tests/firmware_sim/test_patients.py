"""Scripted patients: valid synthetic ID numbers and realistic value distributions."""

from __future__ import annotations

import datetime as dt
import random
import statistics

import pytest

from firmware_sim.patients import id_number, make_patient, parse_mix, patients
from protocol import idnum
from protocol.flags import bmi

TODAY = dt.date(2025, 3, 1)


def sample(group: str, n: int = 400) -> list:  # type: ignore[type-arg]
    rng = random.Random(11)
    return [make_patient(rng, group, TODAY) for _ in range(n)]  # type: ignore[arg-type]


@pytest.mark.parametrize("group", ["adult", "child", "pregnant"])
def test_every_id_number_is_valid_and_consistent(group: str) -> None:
    for p in sample(group, 200):
        assert idnum.normalise(p.national_id) == p.national_id
        assert idnum.birth_date(p.national_id) == p.birth_date
        assert idnum.sex(p.national_id) == p.sex
        assert p.national_id not in repr(p)


def test_id_number_helper_matches_the_gb_example_structure() -> None:
    number = id_number("110105", dt.date(1949, 12, 31), 1, "2")
    assert number.startswith("11010519491231") and idnum.is_valid(number) and idnum.sex(number) == "2"


def test_adult_distributions_are_realistic() -> None:
    adults = sample("adult")
    women = [p for p in adults if p.sex == "2"]
    assert 154 < statistics.mean(p.height_cm for p in women) < 162
    assert 19 < statistics.mean(bmi(p.weight_kg, p.height_cm) for p in adults) < 26
    assert 115 < statistics.mean(p.systolic for p in adults) < 140
    assert all(p.systolic > p.diastolic for p in adults)
    assert any(p.temperature_c >= 37.3 for p in adults)  # a few with fever
    assert all(p.valid_to is None for p in adults if (TODAY - p.birth_date).days > 46.1 * 365.25)


def test_children_and_pregnant_women() -> None:
    children = sample("child")
    assert all(60 <= p.height_cm <= 185 and p.weight_kg < 100 for p in children)
    assert statistics.mean(p.pulse for p in children) > 80
    pregnant = sample("pregnant")
    assert all(p.sex == "2" and p.pregnant_weeks is not None and 8 <= p.pregnant_weeks <= 40 for p in pregnant)


def test_stream_is_reproducible_and_mix_is_checked() -> None:
    a, b = patients(5), patients(5)
    assert [next(a).national_id for _ in range(5)] == [next(b).national_id for _ in range(5)]
    assert parse_mix("adult=2,child") == ["adult", "adult", "child"]
    with pytest.raises(ValueError, match="unknown patient group"):
        parse_mix("elderly")
