"""Platform profiles: the reference profile is complete; records map to platform JSON."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from protocol.mch import valuesets as vs
from protocol.mch.profile import Profile, ProfileError
from protocol.mch.records import BreastCase, CervicalCase, GrowthCheck, PrenatalVisit

REFERENCE = Path(__file__).resolve().parents[3] / "cloud" / "mch" / "profiles" / "reference.toml"
BASE = {"case_id": "c1", "site_id": "s1", "subject_id": "p1", "screened_on": "2026-11-20"}


@pytest.fixture(scope="module")
def profile() -> Profile:
    return Profile.from_mapping(tomllib.loads(REFERENCE.read_text(encoding="utf-8")), str(REFERENCE))


def test_reference_profile_maps_every_field_and_code(profile: Profile) -> None:
    for cls in (CervicalCase, BreastCase, GrowthCheck, PrenatalVisit):
        mapping = profile.cases[cls.__struct_config__.tag]
        assert set(mapping.fields) == set(cls.__struct_fields__), cls.__name__
    for field, table in profile.codes.items():
        allowed = set(vs.VALUE_SETS[field]) - ({"6"} if field.endswith("birads") else set())
        assert set(table) == allowed, field


def test_case_to_platform_json(profile: Profile) -> None:
    case = CervicalCase(**BASE, hpv="positive_16", sampling="liquid_based", tbs="HSIL", colposcopy="abnormal")
    out = profile.to_platform(case)
    assert out == {"caseNo": "c1", "recordVersion": 1, "orgCode": "s1", "personId": "p1",
                   "screenDate": "2026-11-20", "hpvResult": "21", "samplingMethod": "2", "tbsResult": "5",
                   "colposcopyResult": "2"}


def test_unmapped_code_and_missing_required_field_are_refused(profile: Profile) -> None:
    with pytest.raises(ProfileError, match="no platform code"):
        profile.to_platform(CervicalCase(**BASE, tbs="CIN9"))
    with pytest.raises(ProfileError, match="requires"):
        profile.to_platform(PrenatalVisit(**BASE))  # gestationalWeeks is required


def test_malformed_profile_names_the_key() -> None:
    with pytest.raises(ProfileError, match="'profile'"):
        Profile.from_mapping({"cases": {}}, "x.toml")
    bad = {"profile": {"name": "p", "version": "1"}, "cases": {"cervical": {"fields": {}, "required": ["caseNo"]}}}
    with pytest.raises(ProfileError, match="unmapped platform fields"):
        Profile.from_mapping(bad, "x.toml")
