"""Local-code mapping from configuration, and HL7 timestamps."""

from __future__ import annotations

import datetime as dt

import pytest

from protocol.hl7.codemap import CodeMap, is_loinc
from protocol.hl7.dtm import format_dtm, parse_dtm
from protocol.hl7.errors import BadValue, CodeMapError
from protocol.hl7.message import Coded


def test_loinc_check_digit() -> None:
    assert is_loinc("85353-1") and is_loinc("718-7")
    assert not is_loinc("85353-2") and not is_loinc("ABC-1")


def test_mapping_local_and_alternate_codes() -> None:
    m = CodeMap.from_config({"L": {"HPV16": "59263-4", "TCT": {"loinc": "10524-7"}}, "99LIS": {"HB": "718-7"}})
    assert m.loinc(Coded("HPV16", "HPV 16型", "L")) == "59263-4"
    assert m.loinc(Coded("TCT", "", "L")) == "10524-7"
    assert m.loinc(Coded("x", "", "99OTHER", "HB", "", "99LIS")) == "718-7"
    assert m.loinc(Coded("4456544", "CBC", "99USI", "57021-8", "", "LN")) == "57021-8"
    assert m.loinc(Coded("NOPE", "", "L")) is None
    assert len(m) == 3


@pytest.mark.parametrize(("config", "needle"), [
    ({"L": {"HPV16": "59263-5"}}, "hl7.code_map.L.HPV16"),
    ({"L": {"HPV16": {"code": "59263-4"}}}, "valid check digit"),
    ({"L": "59263-4"}, "must be a table"),
])
def test_bad_configuration_names_file_key_and_fix(config: dict[str, object], needle: str) -> None:
    with pytest.raises(CodeMapError, match=r"cloud\.toml") as err:
        CodeMap.from_config(config)
    assert needle in str(err.value)


def test_format_and_parse_dtm() -> None:
    assert format_dtm(0) == "19700101080000+0800"
    assert format_dtm(0, -300) == "19691231190000-0500"
    t = parse_dtm("20110103143428-0800")
    assert t == dt.datetime(2011, 1, 3, 22, 34, 28, tzinfo=dt.UTC)
    assert parse_dtm("201410060627") == dt.datetime(2014, 10, 6, 6, 27)
    assert parse_dtm("2014") == dt.datetime(2014, 1, 1)
    assert parse_dtm("20190502121659.069-0700") is not None
    assert parse_dtm("") is None


@pytest.mark.parametrize("bad", ["yesterday", "20141306", "2014-10-06",
                                 "20141006+9999", "20141006-2400"])  # found by fuzzing: offsets out of range
def test_bad_timestamps(bad: str) -> None:
    with pytest.raises(BadValue):
        parse_dtm(bad, location="OBX^1^14")
