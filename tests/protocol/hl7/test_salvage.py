"""The tolerant header read behind every error ACK (issue 16 finding 3): MSA-2 echoes MSH-10."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.hl7.ack import ack_code, build_ack, parse_ack
from protocol.hl7.errors import Hl7Error
from protocol.hl7.message import check
from protocol.hl7.salvage import MAX_HEAD, salvage_header
from tests.protocol.hl7.conftest import FILES, load

OK = b"MSH|^~\\&|LIS|HOSP|MCHUB|C|20260301||ORU^R01|CID-7|P|2.5.1\rPID|||9^^^H^MR\rOBR|1\r"

#: defects that make the strict reader fail although MSH-10 is readable
DEFECTS = {
    "bad segment name": OK + b"ZZ|x\r",
    "body not valid in the declared charset": OK.replace(b"|2.5.1", b"|2.5.1||||||UNICODE UTF-8") + b"NTE|\xff\xfe\r",
    "unknown charset": OK.replace(b"|2.5.1", b"|2.5.1||||||EBCDIC"),
    "version not 2.x": OK.replace(b"|2.5.1", b"|3.0"),
    "bad processing id": OK.replace(b"|P|", b"|X|"),
    "bad accept ack": OK.replace(b"|2.5.1", b"|2.5.1|||XX"),
    "MSH-2 broken": OK.replace(b"^~\\&", b"^~"),
    "second MSH": OK + OK,
    "junk before MSH": b"\x00\x01junk\r" + OK,
    "unsupported type": OK.replace(b"ORU^R01", b"QRY^Q01"),
}


@pytest.mark.parametrize("case", sorted(DEFECTS))
def test_every_error_ack_echoes_the_control_id(case: str) -> None:
    raw = DEFECTS[case]
    error: Hl7Error | None = None
    try:
        check(raw)
    except Hl7Error as exc:
        error = exc
    assert error is not None, "the defect must fail the strict read"
    header = salvage_header(raw)
    assert header is not None
    assert (header.sender, header.control_id, header.message_type) == (
        "LIS|HOSP", "CID-7", "QRY" if case == "unsupported type" else "ORU")
    ack = parse_ack(build_ack(header, ack_code(header, error), control_id="A1", timestamp="20260301", error=error))
    assert ack.control_id == "CID-7"
    assert ack.code in ("AE", "AR")


def test_no_msh_no_header() -> None:
    assert salvage_header(b"hello world") is None
    assert salvage_header(b"") is None
    assert salvage_header(b"MSH") is None
    assert salvage_header(b" " * MAX_HEAD + OK) is None  # only the first MAX_HEAD bytes are searched


def test_long_values_are_bounded() -> None:
    h = salvage_header(OK.replace(b"CID-7", b"9" * 5000))
    assert h is not None and len(h.control_id) == 199


def test_agrees_with_the_strict_reader_on_valid_messages(fixture_name: str) -> None:
    raw = load(fixture_name)
    strict = check(raw, supported=None)
    assert salvage_header(raw) == strict


@given(st.sampled_from(FILES), st.data())
def test_never_raises_on_mutated_messages(name: str, data: st.DataObject) -> None:
    raw = bytearray(load(name))
    for _ in range(data.draw(st.integers(1, 10))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.sampled_from(b"|^~\\&\r\n\x00\xff\x1c\x0b9 "))
    h = salvage_header(bytes(raw))
    assert build_ack(h, "AE", control_id="A", timestamp="2026").startswith(b"MSH")


@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    salvage_header(data)
    salvage_header(b"MSH|^~\\&|" + data)
