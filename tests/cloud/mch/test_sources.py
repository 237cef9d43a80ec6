"""results rows -> evidence: LOINC map, Chinese/English wordings, DICOM BI-RADS by modality."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.mch.sources import birads_of, evidence_of
from protocol.mch.assemble import ResultMap

T = 1_763_600_000_000  # 2025-11-20 China time


def ev(source: str, kind: str, code: str, value: str, **payload: Any) -> list[tuple[str, str]]:
    row = {"id": 7, "source": source, "kind": kind, "code": code, "value": value, "observed_ms": T,
           "created_ms": T, "payload": payload}
    return [(e.field, e.value) for e in evidence_of(row, ResultMap())]


@pytest.mark.parametrize(("kind", "code", "value", "payload", "want"), [
    ("hpv", "30167-1", "阴性", {}, [("hpv", "negative")]),
    ("hpv", "L123", "HPV16阳性", {"interpretation": "positive"}, [("hpv", "positive_16")]),
    ("hpv", "L123", "16型、18型阳性", {}, [("hpv", "positive_16_18")]),
    ("hpv", "L123", "其他高危型阳性", {"interpretation": "positive"}, [("hpv", "positive_other")]),
    ("hpv", "L123", "检测中", {}, []),
    ("cytology", "47527-7", "NILM", {"loinc": "47527-7"}, [("tbs", "NILM"), ("sampling", "liquid_based")]),
    ("cytology", "L9", "未见上皮内病变或恶性病变", {"name": "TCT"}, [("tbs", "NILM"), ("sampling", "liquid_based")]),
    ("cytology", "L9", "ASCUS，建议阴道镜", {"interpretation": "ASC-US", "name": "巴氏涂片"},
     [("tbs", "ASC-US"), ("sampling", "pap")]),
    ("pathology", "22637-3", "宫颈活检：CIN3", {}, [("histology", "CIN3")]),
    ("pathology", "22637-3", "慢性宫颈炎", {}, [("histology", "normal")]),
    ("pathology", "22637-3", "乳腺纤维腺瘤", {"name": "乳腺病理"}, [("pathology", "fibroadenoma")]),
    ("pathology", "22637-3", "左乳浸润性导管癌", {}, [("pathology", "invasive_ductal")]),
    ("colposcopy", "C1", "未见异常", {}, [("colposcopy", "normal")]),
    ("colposcopy", "C1", "醋白上皮，转化区3型", {},
     [("colposcopy", "abnormal"), ("colposcopy_impression", "醋白上皮，转化区3型")]),
    ("glucose", "2345-7", "5.1", {}, []),
])
def test_hl7_rows(kind: str, code: str, value: str, payload: dict[str, Any], want: list[tuple[str, str]]) -> None:
    assert ev("hl7", kind, code, value, **payload) == want


def test_dicom_rows_by_code_modality_or_words() -> None:
    assert ev("dicom", "birads", "BIRADS-US", "4A") == [("ultrasound_birads", "4A")]
    assert ev("dicom", "birads", "", "2", report_modality="MG") == [("mammography_birads", "2")]
    assert ev("dicom", "sr", "", "", birads="3", study_description="乳腺超声") == [("ultrasound_birads", "3")]
    assert ev("dicom", "sr", "", "", birads="0", sr_text="Bilateral mammography") == [("mammography_birads", "0")]
    assert ev("dicom", "sr", "", "", birads="2") == []  # no modality known: nothing guessed


def test_birads_texts() -> None:
    assert [birads_of(t) for t in ("4a", "BI-RADS 3", "4B类", "5", "7", "x", "")] == ["4A", "3", "4B", "5", None,
                                                                                   None, None]


def test_rows_as_the_intakes_store_them() -> None:
    hl7 = {"result": {"loinc": "10524-7", "name": "宫颈液基细胞学(TBS)", "interpretation": "NILM", "value": "NILM"},
           "control_id": "LIS1", "message_type": "ORU^R01"}
    assert ev("hl7", "cytology", "10524-7", "NILM", **hl7) == [("tbs", "NILM"), ("sampling", "liquid_based")]
    assert ev("dicom", "birads", "BI-RADS", "4A", modality="US", study_uid="1.2") == [("ultrasound_birads", "4A")]
    assert ev("dicom", "birads", "BI-RADS", "2", modality="SR", study_uid="1.2") == []  # the assembler asks the study
    assert ev("dicom", "birads", "BI-RADS", "2", modality="SR", report_modality="MG") == [("mammography_birads", "2")]
