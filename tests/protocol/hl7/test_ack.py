"""Acknowledgements: original and enhanced mode, MSA and ERR, checked with hl7apy."""

from __future__ import annotations

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from protocol.hl7.ack import ack_code, ack_wanted, application_ack_wanted, build_ack, parse_ack
from protocol.hl7.errors import BadValue, MissingField
from protocol.hl7.message import parse_header


def header(msh15: str = "", msh16: str = "", charset: str = ""):  # type: ignore[no-untyped-def]
    return parse_header(f"MSH|^~\\&|LIS|HOSP|MCHUB|C|20260101||ORU^R01|C42|P|2.5.1|||{msh15}|{msh16}||{charset}"
                        .encode())


def test_original_mode_codes() -> None:
    h = header()
    assert not h.enhanced
    assert ack_code(h, None) == "AA"
    assert ack_code(h, BadValue("x")) == "AE"
    assert ack_code(h, MissingField("x")) == "AE"
    assert ack_code(None, MissingField("x")) == "AE"
    assert ack_wanted(h, ok=True) and ack_wanted(h, ok=False)


@pytest.mark.parametrize(("msh15", "ok", "wanted"), [
    ("AL", True, True), ("AL", False, True), ("NE", True, False), ("NE", False, False),
    ("ER", True, False), ("ER", False, True), ("SU", True, True), ("SU", False, False), ("", True, True),
])
def test_enhanced_mode_honours_msh15(msh15: str, ok: bool, wanted: bool) -> None:
    h = header(msh15, "NE")
    assert h.enhanced
    assert ack_wanted(h, ok) is wanted
    assert ack_code(h, None if ok else BadValue("x")) == ("CA" if ok else "CE")


def test_application_ack_follows_msh16() -> None:
    assert application_ack_wanted(header("AL", "AL"), ok=True)
    assert not application_ack_wanted(header("AL", "NE"), ok=False)
    assert application_ack_wanted(header("AL", "ER"), ok=False)


def test_ack_echoes_the_control_id_and_validates_with_hl7apy() -> None:
    raw = build_ack(header(), "AA", control_id="A1", timestamp="20260101120000+0800")
    ref = parse_message(raw.decode(), validation_level=VALIDATION_LEVEL.STRICT)
    ref.validate()
    assert ref.msa.msa_1.value == "AA" and ref.msa.msa_2.value == "C42"
    assert ref.msh.msh_5.to_er7() == "LIS" and ref.msh.msh_9.to_er7() == "ACK^R01^ACK"
    ack = parse_ack(raw)
    assert ack.accepted and ack.control_id == "C42"


def test_error_ack_carries_err_location_code_and_text() -> None:
    error = BadValue("OBX-5 'x' is not a number", location="OBX^4^5")
    raw = build_ack(header(), "AE", control_id="A2", timestamp="20260101", error=error)
    ref = parse_message(raw.decode(), validation_level=VALIDATION_LEVEL.TOLERANT)
    assert ref.err.err_2.to_er7() == "OBX^4^5"
    assert ref.err.err_3.to_er7() == "102^Data type error^HL70357"
    assert ref.err.err_4.to_er7() == "E"
    ack = parse_ack(raw)
    assert not ack.accepted
    assert ack.reason == "AE: 102 Data type error: OBX-5 'x' is not a number"


def test_ack_for_an_unparseable_message() -> None:
    raw = build_ack(None, "AR", control_id="A3", timestamp="20260101", error=MissingField("no MSH"))
    ack = parse_ack(raw)
    assert ack.code == "AR" and ack.control_id == ""


def test_ack_keeps_the_senders_charset() -> None:
    raw = build_ack(header(charset="GB18030"), "AE", control_id="A4", timestamp="2026", text="检验结果格式错误")
    assert "检验结果格式错误".encode("gb18030") in raw
    assert parse_ack(raw).text == "检验结果格式错误"


def test_ack_without_msa_is_an_error() -> None:
    with pytest.raises(MissingField):
        parse_ack(b"MSH|^~\\&|A|B|C|D|2026||ACK|1|P|2.5\r")
