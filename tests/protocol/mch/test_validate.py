"""MCH case validation: value sets, consistency rules, completeness."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.mch import valuesets as vs
from protocol.mch.records import BreastCase, CervicalCase, GrowthCheck, PrenatalVisit, case_from_json, case_to_json
from protocol.mch.validate import is_valid, missing, validate

TODAY = dt.date(2026, 11, 22)
BASE = {"case_id": "c1", "site_id": "s1", "subject_id": "p1", "screened_on": "2026-11-20"}


def rules(case: object) -> set[str]:
    return {e.rule for e in validate(case, TODAY) if e.severity == "error"}  # type: ignore[arg-type]


def test_a_complete_negative_cervical_case_is_valid_and_complete() -> None:
    case = CervicalCase(**BASE, age_years=45, hpv="negative", sampling="liquid_based", tbs="NILM")
    assert validate(case, TODAY) == []
    assert missing(case) == []


def test_abnormal_cytology_requires_a_colposcopy_decision() -> None:
    case = CervicalCase(**BASE, hpv="positive_other", sampling="liquid_based", tbs="ASC-US")
    assert "colposcopy_after_abnormal_cytology" in rules(case)
    decided = CervicalCase(**BASE, hpv="positive_other", sampling="liquid_based", tbs="ASC-US", colposcopy="not_done")
    assert is_valid(decided, TODAY)


def test_hpv16_needs_colposcopy_and_abnormal_colposcopy_awaits_histology() -> None:
    assert "colposcopy_after_hpv16_18" in rules(CervicalCase(**BASE, hpv="positive_16"))
    case = CervicalCase(**BASE, hpv="positive_16", colposcopy="abnormal", colposcopy_impression="HSIL")
    assert is_valid(case, TODAY)
    assert missing(case) == ["histology"]


def test_value_sets_dates_and_primary_test() -> None:
    case = CervicalCase(**{**BASE, "screened_on": "2027-01-01"}, tbs="CIN9", sampling="pap")
    assert {"value_set", "date"} <= rules(case)
    assert "primary_test" in rules(CervicalCase(**BASE, hpv="not_done"))
    errors = validate(CervicalCase(**BASE, tbs="CIN9", sampling="pap"), TODAY)
    assert any("CIN9" in e.zh and "value set" in e.en for e in errors)


def test_age_outside_programme_is_only_a_warning() -> None:
    case = CervicalCase(**BASE, age_years=30, hpv="negative")
    assert is_valid(case, TODAY)
    assert [e.rule for e in validate(case, TODAY)] == ["programme_age"]


def test_breast_follow_up_chain() -> None:
    case = BreastCase(**BASE, palpation="lump", ultrasound_birads="0")
    assert is_valid(case, TODAY) and missing(case) == ["mammography_birads"]
    case = BreastCase(**BASE, palpation="lump", ultrasound_birads="4B")
    assert missing(case) == ["pathology"]
    case = BreastCase(**BASE, palpation="lump", ultrasound_birads="5", pathology="invasive_ductal")
    assert missing(case) == ["stage"]
    assert "stage_needs_malignancy" in rules(BreastCase(**BASE, ultrasound_birads="2", stage="I"))
    assert "value_set" in rules(BreastCase(**BASE, ultrasound_birads="6"))  # 6 is not a screening result


def test_growth_and_prenatal_ranges() -> None:
    assert "date" in rules(GrowthCheck(**BASE, sex="1", birth_date="2026-12-01", weight_kg=9.0))
    assert "range" in rules(GrowthCheck(**BASE, sex="1", birth_date="2025-11-20", weight_kg=90.0))
    assert missing(GrowthCheck(**BASE, sex="2", birth_date="2025-11-20")) == ["weight_kg", "height_cm"]
    assert "bp_order" in rules(PrenatalVisit(**BASE, gestational_weeks=24, systolic=80, diastolic=90))


@given(st.sampled_from(sorted(vs.TBS)), st.sampled_from(sorted(vs.HPV)),
       st.none() | st.sampled_from(sorted(vs.COLPOSCOPY)))
def test_every_combination_validates_without_crashing_and_round_trips(tbs: str, hpv: str, colpo: str | None) -> None:
    case = CervicalCase(**BASE, tbs=tbs, hpv=hpv, sampling="pap", colposcopy=colpo)
    validate(case, TODAY)
    missing(case)
    assert case_from_json(case_to_json(case)) == case


def test_every_code_has_both_languages() -> None:
    for name, value_set in vs.VALUE_SETS.items():
        for code, (zh, en) in value_set.items():
            assert zh and en, (name, code)
    assert vs.display(vs.TBS, "HSIL") == "高度鳞状上皮内病变"
    assert vs.display(vs.TBS, "HSIL", "en").startswith("high-grade")


@pytest.mark.parametrize("case", [CervicalCase(**BASE), BreastCase(**BASE), GrowthCheck(**BASE), PrenatalVisit(**BASE)])
def test_json_carries_the_case_type(case: object) -> None:
    assert case_from_json(case_to_json(case)) == case  # type: ignore[arg-type]
