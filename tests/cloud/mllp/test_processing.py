"""Stored messages -> lab results and patient identifiers."""

from __future__ import annotations

import pytest

from cloud.mllp.processing import application_ack, interpret, process_message
from firmware_sim.his import adt_message, fixture_messages, lab_message
from protocol.hl7.ack import parse_ack
from protocol.hl7.codemap import CodeMap
from protocol.hl7.errors import Hl7Error
from tests.cloud.mllp.conftest import FIXTURES

CODES = CodeMap.from_config({"L": {"HPV16": "59263-4", "TCT": "10524-7"}})


def test_nist_cbc_results() -> None:
    p = process_message(fixture_messages(FIXTURES)["LRI_2.0-NG_CBC_Typ_Message.hl7"])
    assert p.message_type == "ORU^R01" and len(p.results) == 28
    first = p.results[0]
    assert (first.loinc, first.numeric, first.units, first.flags, first.category) == \
        ("26453-1", 4.41, "10*6/uL", ("N",), "lab")
    assert first.observed_at == "2011-01-03T14:34:28-08:00"
    assert p.results[19].value == "260348001" and p.results[19].coded_system == "SCT"
    assert p.patient.mrn == "PATID1234" and p.patient.national_id is None
    assert p.warnings == ()


def test_lab_oru_falls_back_to_obr_time_and_keeps_pending_results() -> None:
    p = process_message(fixture_messages(FIXTURES)["LAB-ORU-1.hl7"])
    assert len(p.results) == 10
    assert p.results[0].value == "" and p.results[0].status == "I"
    assert p.results[0].observed_at is None  # neither OBX-14 nor OBR-7 is valued


def test_screening_message_with_local_codes_and_chinese_text() -> None:
    p = process_message(lab_message(1, "GB18030"), CODES)
    assert p.patient.national_id == "11010519491231002X" and p.patient.mrn == "M000001"
    assert p.patient.name == "王秀英"
    hpv, tct, hb, path = p.results
    assert (hpv.loinc, hpv.category, hpv.interpretation) == ("59263-4", "hpv", "negative")
    assert (tct.loinc, tct.category, tct.interpretation) == ("10524-7", "cytology", "NILM")
    assert (hb.loinc, hb.numeric, hb.category) == ("718-7", 128.0, "lab")
    assert path.category == "pathology" and path.value == "慢性宫颈炎\n未见异型增生"


def test_unmapped_local_codes_are_kept_with_a_warning() -> None:
    p = process_message(lab_message(1))
    assert p.results[0].loinc is None and p.results[0].code == "HPV16"
    assert p.results[0].category == "hpv"  # recognised from the text
    assert any("HPV16 has no LOINC mapping" in w for w in p.warnings)


def test_invalid_national_id_is_not_used() -> None:
    raw = lab_message(1).replace(b"11010519491231002X", b"110105194912310021")
    p = process_message(raw)
    assert p.patient.national_id is None
    assert any("check character" in w for w in p.warnings)


def test_adt_identifiers_and_merge() -> None:
    p = process_message(adt_message(5, "A40"))
    assert p.message_type == "ADT^A40" and p.results == ()
    assert p.patient.mrn == "M000005" and [i.id for i in p.merge_prior] == ["M000004"]


@pytest.mark.parametrize(("cat", "text", "expected"), [
    ("hpv", "阳性 (16型)", "positive"), ("hpv", "Not detected", "negative"), ("hpv", "见报告", None),
    ("cytology", "ASC-US 非典型鳞状细胞", "ASC-US"), ("cytology", "hsil", "HSIL"), ("cytology", "ASCH", "ASC-H"),
    ("lab", "positive", None),
])
def test_interpretation(cat: str, text: str, expected: str | None) -> None:
    assert interpret(cat, text) == expected  # type: ignore[arg-type]


def test_a_message_that_no_longer_parses_raises_a_typed_error() -> None:
    with pytest.raises(Hl7Error):
        process_message(b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|2|P|2.5\r")  # no PID
    with pytest.raises(Hl7Error):
        process_message(b"not hl7")


def test_application_acks_follow_msh16() -> None:
    nist = fixture_messages(FIXTURES)["LRI_2.0-NG_CBC_Typ_Message.hl7"]  # MSH-15 AL, MSH-16 NE: none wanted
    wants = lab_message(1).replace(b"||||||UNICODE", b"|||AL|AL||UNICODE")
    broken = b"MSH|^~\\&|LIS|H|MCHUB|C|2026||ORU^R01|9|P|2.5.1|||AL|ER\rPID|||1\r"  # no OBR: AE wanted
    sent = []
    for raw in (nist, wants, broken):
        error = None
        try:
            process_message(raw)
        except Hl7Error as exc:
            error = exc
        ack = application_ack(raw, error, control_id="P1", timestamp="20260301120000")
        if ack is not None:
            sent.append(parse_ack(ack))
    assert [(a.code, a.control_id) for a in sent] == [("AA", "LIS00000001"), ("AE", "9")]
    assert "OBR" in sent[1].reason
