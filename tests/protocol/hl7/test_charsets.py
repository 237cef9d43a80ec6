"""MSH-18 character sets: every HL7 table 0211 value and the vendor spellings (issue 16 finding 4)."""

from __future__ import annotations

import pytest

from protocol.hl7.ack import build_ack, parse_ack
from protocol.hl7.encoding import TABLE_0211, VENDOR_CHARSETS, codec_for
from protocol.hl7.errors import CharsetError, UnknownCharset
from protocol.hl7.message import parse
from protocol.hl7.salvage import salvage_header

HEAD = "MSH|^~\\&|BC-3600|Mindray|||20260301101010||ORU^R01|1|P|2.3.1||||||{}"
BODY = "\rPID|1||0001^^^^MR||{name}\rOBR|1||S1|00001^Automated Count^99MRC\rOBX|1|NM|6690-2^WBC^LN||6.5|10*9/L|||||F\r"
TEXT = {"ascii": "Zhang", "latin-1": "Müller"}
DECODABLE = sorted(k for k, v in TABLE_0211.items() if v is not None and not v.startswith("utf-1")
                   and not v.startswith("utf-3"))


def message(charset: str, name: str) -> bytes:
    codec = codec_for(charset)
    return (HEAD.format(charset) + BODY.format(name=name)).encode(codec)


@pytest.mark.parametrize("charset", DECODABLE)
def test_every_table_0211_value_is_read(charset: str) -> None:
    codec = codec_for(charset)
    name = "王秀英" if codec in ("utf-8", "gb18030", "big5", "euc_kr", "iso2022_jp_2") else "Muller"
    if codec == "euc_kr":
        name = "김민지"
    elif codec == "big5":
        name = "王秀英"
    elif codec == "iso2022_jp_2":
        name = "山田"
    m = parse(message(charset, name))
    assert m.header.charset == charset
    assert m.patient is not None and m.patient.family_name == name


@pytest.mark.parametrize("charset", ["UNICODE", "UNICODE UTF-8", "unicode utf-8", "GB 18030-2000"])
def test_the_values_chinese_analysers_send(charset: str) -> None:
    """Mindray BC-series and other analysers send UNICODE; it used to be refused with AR."""
    m = parse(message(charset, "王秀英"))
    assert m.patient is not None and m.patient.family_name == "王秀英"
    assert m.orders[0].observations[0].numeric == 6.5


@pytest.mark.parametrize("spelling", sorted(VENDOR_CHARSETS))
def test_vendor_spellings_are_read(spelling: str) -> None:
    codec = VENDOR_CHARSETS[spelling]
    if codec.startswith(("utf-16", "utf-32")):
        assert codec_for(spelling) == codec
        return
    name = "王秀英" if codec in ("utf-8", "gb18030", "big5") else "Yamada" if codec == "shift_jis" else "Kim"
    m = parse(message(spelling, name))
    assert m.patient is not None and m.patient.family_name == name


@pytest.mark.parametrize("value", ["EBCDIC", "KOI8-R", "CNS 11643-1992"])
def test_an_unknown_charset_is_an_ae_whose_err_names_the_value(value: str) -> None:
    raw = (HEAD.format(value) + BODY.format(name="x")).encode()
    with pytest.raises(UnknownCharset) as err:
        parse(raw)
    assert isinstance(err.value, CharsetError)
    assert err.value.ack_code == "AE" and err.value.location == "MSH^1^18"
    header = salvage_header(raw)
    assert header is not None and header.control_id == "1" and header.charset == ""
    ack = parse_ack(build_ack(header, "AE", control_id="A1", timestamp="20260301", error=err.value))
    assert ack.code == "AE" and ack.control_id == "1"
    assert value in ack.text and ack.error_code == "103"
