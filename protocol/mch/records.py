"""MCH case records as our system holds and versions them.

A record is a snapshot of a case at one ``version``; a correction is a new version. Coded
fields hold codes of :mod:`protocol.mch.valuesets` (``None`` = not yet known); they are
plain strings so that a bad code becomes a field-level validation error, not a decode
failure. ``subject_id`` is our patient-index id, never a national ID number.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class _Case(msgspec.Struct, kw_only=True, tag_field="type", frozen=True):
    case_id: str
    version: int = 1
    site_id: str
    subject_id: str
    screened_on: str  #: YYYY-MM-DD (the visit that opened the case)


class CervicalCase(_Case, tag="cervical", kw_only=True, frozen=True):
    """Cervical cancer screening: primary tests, triage, diagnosis, treatment."""

    age_years: int | None = None
    hpv: str | None = None
    via_vili: str | None = None
    sampling: str | None = None
    pap_class: str | None = None
    tbs: str | None = None
    colposcopy: str | None = None
    colposcopy_impression: str | None = None
    histology: str | None = None
    treatment: str | None = None


class BreastCase(_Case, tag="breast", kw_only=True, frozen=True):
    """Breast cancer screening: clinical exam, ultrasound, mammography, pathology, stage."""

    age_years: int | None = None
    palpation: str | None = None
    ultrasound_birads: str | None = None
    mammography_birads: str | None = None
    pathology: str | None = None
    stage: str | None = None


class GrowthCheck(_Case, tag="growth", kw_only=True, frozen=True):
    """A child health check (0-6 years) with WHO 2006 Z-scores."""

    sex: Literal["1", "2"] | None = None
    birth_date: str | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    head_circumference_cm: float | None = None
    measured_lying: bool | None = None
    z_wfa: float | None = None
    z_lhfa: float | None = None
    z_wflh: float | None = None
    z_bmi: float | None = None
    findings: tuple[str, ...] = ()


class PrenatalVisit(_Case, tag="prenatal", kw_only=True, frozen=True):
    """One antenatal care visit."""

    gestational_weeks: int | None = None
    systolic: float | None = None
    diastolic: float | None = None
    weight_kg: float | None = None
    pre_pregnancy_weight_kg: float | None = None
    bp_class: str | None = None
    #: five-colour pregnancy risk (protocol.clinical.risk): green/yellow/orange/red, purple beside it
    risk_colour: str | None = None
    risk_purple: bool = False
    risk_items: tuple[str, ...] = ()  #: ids of the 2017 assessment table's rows that matched
    #: the day staff took an orange/red/purple woman into high-risk case management (a correction, audited)
    risk_managed_on: str | None = None


Case = CervicalCase | BreastCase | GrowthCheck | PrenatalVisit

_decoder = msgspec.json.Decoder(Case)


def case_to_json(case: Case) -> bytes:
    """Stable JSON form (``type`` names the kind of case)."""
    return msgspec.json.encode(case)


def case_from_json(data: bytes | str) -> Case:
    """Parse the JSON form; raises msgspec.ValidationError/DecodeError on bad input."""
    try:
        case: Case = _decoder.decode(data)
    except UnicodeDecodeError as exc:  # msgspec lets this escape for invalid UTF-8 in a key
        raise msgspec.DecodeError(f"invalid UTF-8: {exc}") from exc
    return case
