"""The ER7 reader and typed view, checked against hl7apy on the third-party fixtures.

Fixtures (tests/fixtures/hl7, see its SOURCES.md): NIST LRI test message
``NIST-LRI-NG-002.00`` and two samples, all from microsoft/FHIR-Converter
data/SampleData/Hl7v2 (MIT).
"""

from __future__ import annotations

import contextlib

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from hypothesis import given
from hypothesis import strategies as st

from protocol.hl7.encoding import DEFAULT, escape, unescape
from protocol.hl7.errors import (
    BadValue,
    CharsetError,
    Hl7Error,
    MissingField,
    NotHl7,
    ParseError,
    UnsupportedMessage,
    UnsupportedProcessingId,
    UnsupportedVersion,
)
from protocol.hl7.message import Message, check, parse, parse_header, read_obx
from tests.protocol.hl7.conftest import FILES, load

HEAD = "MSH|^~\\&|LIS|H|MCHUB|C|20260101||ORU^R01|42|P|2.5.1"


def test_the_fixture_folder_is_there() -> None:
    assert len(FILES) >= 3


def _hl7apy(raw: bytes):  # type: ignore[no-untyped-def]
    return parse_message(raw.decode(), validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=False)


def test_every_fixture_parses_and_agrees_with_hl7apy(fixture_name: str) -> None:
    raw = load(fixture_name)
    ours = parse(raw)
    ref = _hl7apy(raw)
    h = ours.header
    assert h.control_id == ref.msh.msh_10.value
    assert f"{h.message_type}^{h.trigger_event}" == "^".join(ref.msh.msh_9.to_er7().split("^")[:2])
    assert h.version == ref.msh.msh_12.to_er7()
    pid = ref.pid
    ref_ids = [(r.cx_1.value, r.cx_5.value) for r in pid.pid_3]
    assert ours.patient is not None
    assert [(i.id, i.type_code) for i in ours.patient.identifiers] == ref_ids
    name = [*pid.pid_5.to_er7().split("^"), ""][:2]
    assert [ours.patient.family_name, ours.patient.given_name] == name
    assert (ours.patient.birth_date, ours.patient.sex) == (pid.pid_7.to_er7(), pid.pid_8.to_er7())
    ref_obx = list(ref.obx) if hasattr(ref, "obx") else []
    ours_obx = [x for o in ours.orders for x in o.observations]
    assert len(ours_obx) == len(ref_obx)
    for x, r in zip(ours_obx, ref_obx, strict=True):
        assert x.value_type == r.obx_2.to_er7()
        assert x.code.code == r.obx_3.obx_3_1.to_er7()
        assert x.code.system == (r.obx_3.obx_3_3.to_er7() if len(r.obx_3.children) >= 3 else "")
        obx5 = r.obx_5.to_er7() if r.obx_5.children else ""
        if x.value_type == "CWE":
            assert x.coded[0].code == obx5.split("^")[0]
        else:
            assert "^".join(x.values) == obx5
        assert x.units.code == (r.obx_6.to_er7().split("^")[0] if r.obx_6.children else "")
        assert x.flags == ((r.obx_8.to_er7(),) if r.obx_8.children else ())
        assert x.status == r.obx_11.to_er7()
        assert x.observed_at == (r.obx_14.to_er7() if r.obx_14.children else "")


def test_nist_cbc_values() -> None:
    m = parse(load("LRI_2.0-NG_CBC_Typ_Message.hl7"))
    obx = m.orders[0].observations
    assert len(obx) == 28
    assert (obx[0].code.code, obx[0].numeric, obx[0].units.code, obx[0].reference_range) == \
        ("26453-1", 4.41, "10*6/uL", "4.3 to 6.2")
    assert obx[3].flags == ("HH",)
    assert obx[19].coded[0].code == "260348001" and obx[19].coded[0].system == "SCT"
    assert obx[25].values == ("Many spherocytes present.",)
    assert m.header.enhanced and m.header.accept_ack == "AL"


def test_lab_oru_two_orders_and_empty_values() -> None:
    m = parse(load("LAB-ORU-1.hl7"))
    assert [o.service.code for o in m.orders] == ["24317-0", "26464-8"]
    first = m.orders[0].observations[0]
    assert first.values == () and first.numeric is None and first.status == "I"


@pytest.mark.parametrize("sep", [b"\r", b"\n", b"\r\n"])
def test_segment_separators_are_all_accepted(fixture_name: str, sep: bytes) -> None:
    assert parse(load(fixture_name, sep)).header == parse(load(fixture_name)).header


def test_custom_encoding_characters() -> None:
    raw = load("LAB-ORU-1.hl7").translate(bytes.maketrans(b"|^~\\&", b"#$*!@"))
    m = parse(raw)
    assert m.header.delimiters.field == "#" and m.header.control_id == "182"
    assert m.orders[1].observations[0].code.code == "23761-0"


def test_escape_sequences() -> None:
    raw = (HEAD + "\rPID|||1^^^^MR||A\\S\\B\\F\\C\\T\\D\\E\\\rOBR|1\r"
           "OBX|1|FT|X^x^L||line 1\\.br\\line 2 \\H\\bold\\N\\ \\X41\\||||||F\r").encode()
    m = parse(raw)
    assert m.patient is not None and m.patient.family_name == "A^B|C&D\\"
    assert m.orders[0].observations[0].values == ("line 1\nline 2 bold A",)


@pytest.mark.parametrize(("msh18", "codec"), [("UNICODE UTF-8", "utf-8"), ("GB18030", "gb18030"), ("", "utf-8")])
def test_charsets_from_msh18(msh18: str, codec: str) -> None:
    raw = (HEAD + f"||||||{msh18}\rPID|||1^^^^MR||王秀英\rOBR|1\rOBX|1|ST|X^宫颈^L||阴性||||||F\r").encode(codec)
    m = parse(raw)
    assert m.patient is not None and m.patient.family_name == "王秀英"
    assert m.orders[0].observations[0].values == ("阴性",)


def test_undeclared_gb18030_is_still_read() -> None:
    raw = (HEAD + "\rPID|||1^^^^MR||王秀英\rOBR|1\r").encode("gb18030")
    m = parse(raw)
    assert m.patient is not None and m.patient.family_name == "王秀英"


def test_declared_charset_that_does_not_match_the_bytes_is_an_error() -> None:
    raw = (HEAD + "||||||UNICODE UTF-8\rPID|||1^^^^MR||王秀英\r").encode("gb18030")
    with pytest.raises(CharsetError) as err:
        parse(raw)
    assert err.value.ack_code == "AR"


def test_unknown_charset_is_rejected() -> None:
    with pytest.raises(CharsetError, match="MSH-18"):
        parse((HEAD + "||||||EBCDIC\r").encode())


@pytest.mark.parametrize(("raw", "error", "location", "ack"), [
    (b"hello", NotHl7, "", "AR"),
    (b"MSH|^~|x", NotHl7, "MSH^1^2", "AR"),
    (b"MSH|^~\\&|A|B|C|D|2026||ORU^R01||P|2.5.1\r", MissingField, "MSH^1^10", "AE"),
    (b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|3.0\r", UnsupportedVersion, "MSH^1^12", "AR"),
    (b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|X|2.5\r", UnsupportedProcessingId, "MSH^1^11", "AR"),
    (b"MSH|^~\\&|A|B|C|D|2026||QRY^Q01|1|P|2.5\r", UnsupportedMessage, "MSH^1^9", "AR"),
    (b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rOBR|1\r", MissingField, "PID", "AE"),
    (b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rPID|||\r", MissingField, "PID^2^3", "AE"),
    (b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rPID|||1\rOBX|1|NM|X||1||||||F\r", ParseError, "OBX^3^1", "AE"),
    (b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rPID|||1\rOBR|1\rOBX|1|NM|X||x||||||F\r", BadValue, "OBX^4^5", "AE"),
    (b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rPID|||1\rOBR|1\rOBX|1|NM|X||1||||||\r", MissingField, "OBX^4^11",
     "AE"),
    (b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rPID|||1\rOBR|1\rOBX|1|ZZ|X||1||||||F\r", BadValue, "OBX^4^2", "AE"),
    (b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rPID|||1\rOBR|1\rOBX|1|NM|||1||||||F\r", MissingField, "OBX^4^3",
     "AE"),
    (b"MSH|^~\\&|A|B|C|D|2026||ADT^A40|1|P|2.5\rPID|||1\r", MissingField, "MRG^1^1", "AE"),
    (b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rPID|||1\rbad|x\r", ParseError, "bad^3", "AE"),
])
def test_errors_are_typed_with_location_and_ack(raw: bytes, error: type[Hl7Error], location: str, ack: str) -> None:
    with pytest.raises(error) as err:
        parse(raw)
    assert err.value.location == location
    assert err.value.ack_code == ack


def test_header_is_readable_when_the_body_is_not() -> None:
    raw = b"MSH|^~\\&|A|B|C|D|2026||ORU^R01|77|P|2.5\rPID|||1\rOBR|1\rOBX|1|NM|X||x||||||F\r"
    with pytest.raises(BadValue):
        parse(raw)
    assert parse_header(raw).control_id == "77"


@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\r"), max_size=40))
def test_escape_round_trip(text: str) -> None:
    d = DEFAULT
    escaped = escape(text, d)
    assert not any(c in escaped for c in "|^~&\r\n")
    assert unescape(escaped, d) == text


def test_adt_a40_merge() -> None:
    m = parse(b"MSH|^~\\&|A|B|C|D|2026||ADT^A40|1|P|2.5\rPID|||NEW^^^H^MR\rMRG|OLD^^^H^MR~X9^^^H^PI\r")
    assert [i.id for i in m.merge_prior] == ["OLD", "X9"]


def test_sn_value_is_numeric_only_when_plain() -> None:
    base = "MSH|^~\\&|A|B|C|D|2026||ORU^R01|1|P|2.5\rPID|||1\rOBR|1\rOBX|1|SN|X^x^L||{}||||||F\r"
    assert parse(base.format("=^5.5").encode()).orders[0].observations[0].numeric == 5.5
    assert parse(base.format(">^10").encode()).orders[0].observations[0].numeric is None
    assert parse(base.format("^1^:^2").encode()).orders[0].observations[0].numeric is None


@given(st.binary(max_size=300))
def test_random_bytes_only_raise_typed_errors(data: bytes) -> None:
    with contextlib.suppress(Hl7Error):
        parse(data)


@given(st.sampled_from(FILES), st.data())
def test_mutated_fixtures_only_raise_typed_errors(name: str, data: st.DataObject) -> None:
    raw = bytearray(load(name))
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.sampled_from(b"|^~\\&\r\n\x00\xff\xe7aZ9 "))
    with contextlib.suppress(Hl7Error):
        parse(bytes(raw), supported=None)


def test_plain_field_has_no_second_component() -> None:
    m = parse((HEAD + "\rPID|||1^^^^MR||王秀英|x\rOBR|1\r").encode())
    assert m.patient is not None
    assert (m.patient.family_name, m.patient.given_name) == ("王秀英", "")
    seg = m.segments[1]
    assert (seg.get(5), seg.get(5, 2), seg.get(5, 1, 2), seg.get(5, rep=1)) == ("王秀英", "", "", "")


def _outcome(fn, raw: bytes) -> object:  # type: ignore[no-untyped-def]
    try:
        return fn(raw)
    except Hl7Error as exc:
        return (type(exc), str(exc), exc.location)


@given(st.sampled_from(FILES), st.data())
def test_check_and_parse_agree_on_every_outcome(name: str, data: st.DataObject) -> None:
    """The listener's check() accepts and rejects exactly what parse() does, with the same error."""
    raw = bytearray(load(name))
    for _ in range(data.draw(st.integers(0, 6))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.sampled_from(b"|^~\\&\rxN5 "))
    parsed = _outcome(parse, bytes(raw))
    checked = _outcome(check, bytes(raw))
    assert checked == (parsed.header if isinstance(parsed, Message) else parsed)


def test_fast_and_general_obx_paths_agree(fixture_name: str) -> None:
    m = parse(load(fixture_name))
    for seg in m.segments:
        if seg.name == "OBX" and seg.simple:
            fast = read_obx(seg)
            seg.simple = False
            assert read_obx(seg) == fast
