"""WHO 2006 growth Z-scores checked against the published WHO z-score tables.

Reference values: WHO Child Growth Standards, "Weight-for-age boys/girls birth to 5
years (z-scores)" and "Length/height-for-age ... (z-scores)" tables (who.int/tools/
child-growth-standards). The tables print each SD line rounded to 0.1 kg / 0.1 cm, so
the check is at that precision: the value where our Z-score crosses the SD line, found
by bisection, must round to the printed value.
"""

from __future__ import annotations

import pytest

from cloud.mch.growth import GrowthError, assess

# (sex, age in months, indicator, value printed in the WHO table, its SD column)
WHO_TABLE_VALUES = [
    ("1", 0, "wfa", 2.5, -2), ("1", 0, "wfa", 3.3, 0), ("1", 0, "wfa", 4.4, 2),
    ("2", 0, "wfa", 2.4, -2), ("2", 0, "wfa", 3.2, 0), ("2", 0, "wfa", 4.2, 2),
    ("1", 12, "wfa", 6.9, -3), ("1", 12, "wfa", 7.7, -2), ("1", 12, "wfa", 9.6, 0), ("1", 12, "wfa", 12.0, 2),
    ("2", 12, "wfa", 7.0, -2), ("2", 12, "wfa", 8.9, 0), ("2", 12, "wfa", 11.5, 2),
    ("1", 0, "lhfa", 46.1, -2), ("1", 0, "lhfa", 49.9, 0), ("1", 0, "lhfa", 53.7, 2),
    ("2", 0, "lhfa", 45.4, -2), ("2", 0, "lhfa", 49.1, 0), ("2", 0, "lhfa", 52.9, 2),
    ("1", 12, "lhfa", 71.0, -2), ("1", 12, "lhfa", 75.7, 0), ("1", 12, "lhfa", 80.5, 2),
    ("2", 12, "lhfa", 68.9, -2), ("2", 12, "lhfa", 74.0, 0), ("2", 12, "lhfa", 79.2, 2),
]


def z_of(sex: str, age_days: int, indicator: str, value: float) -> float:
    if indicator == "wfa":
        score = assess(sex=sex, age_days=age_days, weight_kg=value).wfa
    else:
        score = assess(sex=sex, age_days=age_days, height_cm=value, measured_lying=True).lhfa
    assert score is not None
    return score.z


@pytest.mark.parametrize(("sex", "months", "indicator", "value", "sd"), WHO_TABLE_VALUES)
def test_z_scores_match_the_who_tables(sex: str, months: int, indicator: str, value: float, sd: int) -> None:
    age_days = round(months * 30.4375)
    low, high = value * 0.8, value * 1.2  # Z rises with the value
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if z_of(sex, age_days, indicator, mid) < sd else (low, mid)
    assert round(low, 1) == value


def test_findings_name_stunting_wasting_and_underweight() -> None:
    g = assess(sex="2", age_days=800, weight_kg=8.0, height_cm=80.0, measured_lying=True)
    assert g.height_cm_adjusted == pytest.approx(79.3)  # lying length at >= 24 months: -0.7 cm
    assert set(g.findings) >= {"stunting", "wasting", "severe_underweight"}
    assert g.findings[0].startswith("severe_")


def test_overweight_and_normal() -> None:
    assert assess(sex="1", age_days=365, weight_kg=9.6, height_cm=75.7).findings == ()
    assert "overweight" in assess(sex="1", age_days=365, weight_kg=12.4, height_cm=75.7).findings


def test_implausible_values_are_flagged_not_classified() -> None:
    g = assess(sex="1", age_days=365, weight_kg=30.0, height_cm=75.7)
    assert g.wfa is not None and g.wfa.implausible
    assert "underweight" not in g.findings


def test_inputs_outside_the_standards_are_refused() -> None:
    with pytest.raises(GrowthError, match="outside"):
        assess(sex="1", age_days=2000, weight_kg=20)
    with pytest.raises(GrowthError, match="sex"):
        assess(sex="0", age_days=100, weight_kg=5)
