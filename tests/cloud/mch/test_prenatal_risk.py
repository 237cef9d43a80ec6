"""The five-colour grade in a prenatal record: from the hub visit and the woman's LIS results.

Rows: 国卫办妇幼发〔2017〕35号 附件2 (see tests/protocol/test_pregnancy_risk.py for every row).
"""

from __future__ import annotations

import datetime as dt

import msgspec

from cloud.mch import vitals
from cloud.mch.sources import CHINA

DAY = dt.date(2026, 11, 20)
OPENED_MS = int(dt.datetime.combine(DAY, dt.time(9, 30), CHINA).timestamp() * 1000)


def visit(birth: str, weight: float = 60.0, height: float = 160.0) -> vitals.Visit:
    obs = msgspec.json.encode([{"code": "29463-7", "value": weight, "unit": "kg"},
                               {"code": "8302-2", "value": height, "unit": "cm"},
                               {"code": "8480-6", "value": 118, "unit": "mm[Hg]"},
                               {"code": "8462-4", "value": 74, "unit": "mm[Hg]"}])
    return vitals.Visit("H1", "S-1", "site", 7, OPENED_MS, 24, "2", birth, ((OPENED_MS + 1000, obs),))


def test_green_for_a_28_year_old_with_normal_results() -> None:
    a = vitals.prenatal(visit("1998-05-01"), 58.0, [{"loinc": "718-7", "value": 12.5, "unit": "g/dL",
                                                     "observed_ms": OPENED_MS - 86_400_000}])
    assert a is not None
    assert (a.case.risk_colour, a.case.risk_purple, a.case.risk_items) == ("green", False, ())  # type: ignore[union-attr]


def test_haemoglobin_from_the_lis_makes_her_yellow() -> None:
    """Hb 9.8 g/dL = 98 g/L: 黄色 2.6.2 妊娠合并贫血(Hb 60-110g/L)."""
    a = vitals.prenatal(visit("1998-05-01"), 58.0, [{"loinc": "718-7", "value": 9.8, "unit": "g/dL",
                                                     "observed_ms": OPENED_MS - 86_400_000}])
    assert a is not None and a.case.risk_colour == "yellow"  # type: ignore[union-attr]
    assert a.case.risk_items == ("yellow-2.6.2",)  # type: ignore[union-attr]


def test_a_result_after_the_visit_day_does_not_grade_that_visit() -> None:
    later = OPENED_MS + 3 * 86_400_000
    a = vitals.prenatal(visit("1998-05-01"), 58.0, [{"loinc": "718-7", "value": 5.0, "unit": "g/dL",
                                                     "observed_ms": later}])
    assert a is not None and a.case.risk_colour == "green"  # type: ignore[union-attr]


def test_age_and_first_bmi_of_the_pregnancy() -> None:
    """41 years (橙色 1.1) and a first-visit BMI of 28.1 (橙色 1.2): orange, both rows listed first."""
    a = vitals.prenatal(visit("1985-01-10", weight=75.0), 72.0, [])
    assert a is not None and a.case.risk_colour == "orange"  # type: ignore[union-attr]
    assert a.case.risk_items[:2] == ("orange-1.1", "orange-1.2")  # type: ignore[union-attr]
