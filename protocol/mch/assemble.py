"""Assemble screening cases from results as they arrive (pure).

Results reach the cloud from the HIS/LIS (HL7 OBX: a code and a value), from PACS
(DICOM SR: a BI-RADS category) and from staff entry. :class:`ResultMap` turns a coded
result into :class:`Evidence` — one case field and one of our codes — using two tables
that live in configuration: result code -> case field, and result text -> our code. The
defaults below cover LOINC codes and the Chinese and English wordings labs commonly use;
a deployment adds its local codes and wordings.

:func:`apply` folds evidence into a case: it opens the case when needed, fills the field,
and bumps ``version`` whenever a value changes (an unchanged resend changes nothing), so
uploads stay idempotent per version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from protocol.mch import valuesets as vs
from protocol.mch.records import BreastCase, CervicalCase

CERVICAL_FIELDS = frozenset({"hpv", "via_vili", "sampling", "pap_class", "tbs", "colposcopy",
                             "colposcopy_impression", "histology", "treatment"})
BREAST_FIELDS = frozenset({"palpation", "ultrasound_birads", "mammography_birads", "pathology", "stage"})

#: result code -> case field. LOINC codes as commonly used by labs; verify against the
#: lab's own dictionary and extend in configuration (local codes map the same way).
DEFAULT_CODES: dict[str, str] = {
    "30167-1": "hpv",  # HPV high-risk DNA [presence] in cervix
    "77379-6": "hpv",  # HPV high-risk types, interpretation
    "19762-4": "tbs",  # general categories [interpretation] of cervical or vaginal smear
    "47527-7": "tbs",  # cytology report of cervical smear, thin prep
    "BIRADS-US": "ultrasound_birads",
    "BIRADS-MG": "mammography_birads",
}

#: normalised result text -> our code, per field (keys are lower-case, spaces removed)
DEFAULT_VALUES: dict[str, dict[str, str]] = {
    "hpv": {"negative": "negative", "阴性": "negative", "neg": "negative", "positive": "positive_untyped",
            "阳性": "positive_untyped", "pos": "positive_untyped", "16阳性": "positive_16", "18阳性": "positive_18",
            "hpv16": "positive_16", "hpv18": "positive_18", "其他高危型阳性": "positive_other",
            "otherhigh-risk": "positive_other"},
    "tbs": {"nilm": "NILM", "未见上皮内病变或恶性病变": "NILM", "asc-us": "ASC-US", "ascus": "ASC-US",
            "asc-h": "ASC-H", "lsil": "LSIL", "hsil": "HSIL", "scc": "SCC", "agc": "AGC-NOS",
            "agc-nos": "AGC-NOS", "agc-fn": "AGC-FN", "ais": "AIS", "adenocarcinoma": "ADENOCARCINOMA"},
}


@dataclass(frozen=True)
class Evidence:
    """One finding for one case field."""

    field: str
    value: str  #: our code (see protocol.mch.valuesets)
    on: str  #: YYYY-MM-DD the result refers to
    source: str  #: e.g. "hl7:MSG00042/OBX3", "dicom:1.2.3.4", "staff:nurse1"


@dataclass
class ResultMap:
    """Configuration: which results feed which case fields, and how their texts read."""

    codes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_CODES))
    values: dict[str, dict[str, str]] = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_VALUES.items()})

    @classmethod
    def from_config(cls, data: Mapping[str, Mapping[str, Any]]) -> ResultMap:
        """Defaults extended by ``[codes]`` and ``[values.<field>]`` tables."""
        m = cls()
        m.codes.update({str(k): str(v) for k, v in data.get("codes", {}).items()})
        values: Mapping[str, Mapping[str, str]] = data.get("values", {})
        for fld, table in values.items():
            m.values.setdefault(fld, {}).update({_norm(k): str(v) for k, v in table.items()})
        return m

    def evidence(self, code: str, text: str, on: str, source: str) -> Evidence | None:
        """Evidence for a coded result, or None when the code or its text is not one we use."""
        fld = self.codes.get(code)
        if fld is None:
            return None
        value = self.values.get(fld, {}).get(_norm(text))
        if value is None:
            value = _direct(fld, text.strip())
        return None if value is None else Evidence(fld, value, on, source)


def _norm(text: str) -> str:
    return "".join(text.lower().split())


def _direct(fld: str, text: str) -> str | None:
    """A text that already is one of our codes (e.g. BI-RADS "4A", TBS "HSIL")."""
    value_set = vs.VALUE_SETS.get(fld)
    if value_set is None:
        return None
    for code in value_set:
        if code.lower() == text.lower():
            return code
    return None


def apply(case: CervicalCase | BreastCase | None, evidence: Evidence, *, case_id: str, site_id: str,
          subject_id: str) -> CervicalCase | BreastCase:
    """The case after ``evidence``: opened if None, field set, version bumped on change."""
    if case is None:
        if evidence.field in CERVICAL_FIELDS:
            case = CervicalCase(case_id=case_id, site_id=site_id, subject_id=subject_id, screened_on=evidence.on)
        elif evidence.field in BREAST_FIELDS:
            case = BreastCase(case_id=case_id, site_id=site_id, subject_id=subject_id, screened_on=evidence.on)
        else:
            raise ValueError(f"evidence for {evidence.field!r} belongs to no screening case")
        return msgspec.structs.replace(case, **{evidence.field: evidence.value})
    if evidence.field not in (CERVICAL_FIELDS if isinstance(case, CervicalCase) else BREAST_FIELDS):
        raise ValueError(f"evidence for {evidence.field!r} does not belong to a {type(case).__name__}")
    if getattr(case, evidence.field) == evidence.value:
        return case  # a resend: nothing changes, no new version
    return msgspec.structs.replace(case, **{evidence.field: evidence.value, "version": case.version + 1})
