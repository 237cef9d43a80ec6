"""Cases assemble from coded results; resends change nothing; changes make versions."""

from __future__ import annotations

import pytest

from protocol.mch.assemble import Evidence, ResultMap, apply
from protocol.mch.records import BreastCase, CervicalCase
from protocol.mch.validate import missing

IDS = {"case_id": "c1", "site_id": "s1", "subject_id": "p1"}


@pytest.mark.parametrize(
    ("code", "text", "field", "value"),
    [
        ("30167-1", "阴性", "hpv", "negative"),
        ("30167-1", " Positive ", "hpv", "positive_untyped"),
        ("30167-1", "HPV16", "hpv", "positive_16"),
        ("19762-4", "HSIL", "tbs", "HSIL"),
        ("19762-4", "ASC-US", "tbs", "ASC-US"),
        ("19762-4", "未见上皮内病变或恶性病变", "tbs", "NILM"),
        ("BIRADS-US", "4a", "ultrasound_birads", "4A"),
    ],
)
def test_results_become_evidence(code: str, text: str, field: str, value: str) -> None:
    ev = ResultMap().evidence(code, text, "2026-11-20", "hl7:1")
    assert ev is not None and (ev.field, ev.value) == (field, value)


def test_unknown_codes_and_texts_are_not_evidence() -> None:
    m = ResultMap()
    assert m.evidence("2345-7", "5.6", "2026-11-20", "hl7:1") is None  # glucose: not a screening result
    assert m.evidence("30167-1", "maybe", "2026-11-20", "hl7:1") is None


def test_local_codes_and_wordings_from_configuration() -> None:
    m = ResultMap.from_config({"codes": {"LIS-HPV": "hpv"}, "values": {"hpv": {"高危型 阳性": "positive_other"}}})
    ev = m.evidence("LIS-HPV", "高危型阳性", "2026-11-20", "hl7:9")
    assert ev is not None and ev.value == "positive_other"


def test_a_cervical_case_assembles_and_versions() -> None:
    case = apply(None, Evidence("hpv", "positive_other", "2026-11-01", "hl7:1"), **IDS)
    assert isinstance(case, CervicalCase) and case.version == 1 and case.screened_on == "2026-11-01"
    assert missing(case) == ["tbs"]
    case = apply(case, Evidence("tbs", "ASC-US", "2026-11-08", "hl7:2"), **IDS)
    assert case.version == 2 and missing(case) == []
    assert apply(case, Evidence("tbs", "ASC-US", "2026-11-08", "hl7:2"), **IDS) is case  # a resend
    with pytest.raises(ValueError, match="does not belong"):
        apply(case, Evidence("ultrasound_birads", "2", "2026-11-08", "dicom:1"), **IDS)


def test_a_breast_case_opens_from_imaging() -> None:
    case = apply(None, Evidence("ultrasound_birads", "4B", "2026-11-01", "dicom:1.2.3"), **IDS)
    assert isinstance(case, BreastCase) and missing(case) == ["pathology"]
