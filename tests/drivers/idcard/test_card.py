"""Text block -> Subject, SW3 codes, the single-frame codec.

The text block layout is the one of devices.md and qiwenming/IDCardDemo (README,
"文字结构说明"): UCS-2 LE, name 30 bytes, sex 2, ethnic 4, birth 16, address 70,
ID 36, authority 30, valid from 16, valid to 16 (or 长期), reserved 36.
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from drivers import registry
from drivers.base import CardRead
from drivers.errors import DeviceStatusError, FrameError, OverlongFrame, TruncatedFrame
from drivers.idcard import frame, status
from drivers.idcard.card import InvalidCardData, decode_read_data, decode_text
from drivers.idcard.ethnic import ETHNIC_GROUPS, ethnic_name
from firmware_sim.idcard_sim import read_answer, text_block
from firmware_sim.patients import Patient, make_patient

GB_EXAMPLE_ID = "11010519491231002X"  # the worked example of GB 11643-1999


def field(text: str, size: int) -> bytes:
    return text.ljust(size // 2).encode("utf-16-le")


def handmade_block(number: str = GB_EXAMPLE_ID, valid_to: str = "长期", sex: str = "2",
                   birth: str = "19491231", ethnic: str = "01") -> bytes:
    return b"".join([
        field("张丽", 30), field(sex, 2), field(ethnic, 4), field(birth, 16), field("北京市朝阳区建国路1号", 70),
        field(number, 36), field("北京市公安局朝阳分局", 30), field("20100101", 16), field(valid_to, 16), field("", 36),
    ])


def test_worked_example_decodes_into_subject() -> None:
    text = decode_text(handmade_block())
    s = text.subject
    assert (s.national_id, s.name, s.sex, s.birth_date) == (GB_EXAMPLE_ID, "张丽", "2", "1949-12-31")
    assert (s.ethnic_code, text.ethnic_zh, text.ethnic_en) == ("01", "汉族", "Han")
    assert (s.address, s.authority) == ("北京市朝阳区建国路1号", "北京市公安局朝阳分局")
    assert (s.valid_from, s.valid_to, s.source) == ("2010-01-01", "long-term", "idcard")
    assert GB_EXAMPLE_ID not in repr(text) and "张丽" not in repr(text)


def test_lower_case_x_is_normalised_and_dated_validity_kept() -> None:
    s = decode_text(handmade_block(GB_EXAMPLE_ID.lower(), valid_to="20300101")).subject
    assert s.national_id == GB_EXAMPLE_ID and s.valid_to == "2030-01-01"


@pytest.mark.parametrize(("kwargs", "why"), [
    ({"number": "110105194912310021"}, "check character"),
    ({"number": "11010519491331002X"}, "date"),
    ({"number": "1101051949"}, "18"),
    ({"sex": "1"}, "sex"),
    ({"sex": "5"}, "sex"),
    ({"birth": "19491230"}, "birth"),
    ({"valid_to": "20301345"}, "real date"),
    ({"valid_to": "永久"}, "YYYYMMDD"),
])
def test_invalid_fields_are_typed_errors(kwargs: dict[str, str], why: str) -> None:
    with pytest.raises(InvalidCardData, match=why):
        decode_text(handmade_block(**kwargs))


def test_unknown_ethnic_code_is_a_warning_not_a_failure() -> None:
    text = decode_text(handmade_block(ethnic="77"))
    assert text.subject.ethnic_code is None and text.warnings


def test_broken_ucs2_is_a_typed_error() -> None:
    block = bytearray(handmade_block())
    block[0:2] = b"\x00\xd8"  # a lone high surrogate
    with pytest.raises(InvalidCardData, match="UCS-2"):
        decode_text(bytes(block))


def test_ethnic_table_has_all_56_groups_plus_97_98() -> None:
    assert len(ETHNIC_GROUPS) == 58
    assert ethnic_name("05") == "维吾尔族" and ethnic_name("56", "en") == "Jino" and ethnic_name("98")
    with pytest.raises(KeyError):
        ethnic_name("57")


def patient(seed: int = 2) -> Patient:
    return make_patient(random.Random(seed), "adult", today=dt.date(2025, 3, 1))


@pytest.mark.parametrize("fingerprint", [False, True])
def test_read_answer_gives_card_read_with_opaque_photo(fingerprint: bool) -> None:
    p = patient()
    answer = frame.parse(read_answer(p, fingerprint))
    card = decode_read_data(answer.data)
    assert card.subject.national_id == p.national_id and card.subject.name == p.name
    assert len(card.photo) == 1024 and card.photo.startswith(b"WLf")
    assert len(card.fingerprint) == (512 if fingerprint else 0)
    assert card.raw == b""  # the clear ID number is not kept twice


def test_read_answer_length_mismatch_is_rejected() -> None:
    data = frame.parse(read_answer(patient())).data
    with pytest.raises(TruncatedFrame):
        decode_read_data(data[:-10])
    with pytest.raises(OverlongFrame):
        decode_read_data(data + b"\x00" * 3)
    with pytest.raises(TruncatedFrame):
        decode_read_data(b"\x01")


def test_registry_codec_decodes_a_card_and_reports_status_errors() -> None:
    codec = registry.codecs()["idcard"]
    (card,) = codec.decode(read_answer(patient()))
    assert isinstance(card, CardRead)
    assert codec.decode(bytes.fromhex("AAAAAA9669 0008 00009F 00000000 97")) == []
    with pytest.raises(FrameError) as exc:
        codec.decode(bytes.fromhex("AAAAAA9669 0004 000080 84"))  # com.dlrc.idcard.IdReader CMD_FIND_FAIL
    assert isinstance(exc.value.__cause__, status.FindCardFailed)


def test_text_block_of_the_simulator_matches_the_layout() -> None:
    p = patient(5)
    assert len(text_block(p)) == 256
    assert decode_text(text_block(p)).subject.national_id == p.national_id


@pytest.mark.parametrize("code", sorted(status.ERRORS))
def test_every_documented_sw3_maps_to_its_own_typed_error(code: int) -> None:
    error = status.error_for(code)
    assert isinstance(error, DeviceStatusError) and error.code == code
    assert type(error) is status.ERRORS[code] and f"0x{code:02X}" in str(error)


def test_success_codes_are_not_errors_and_unknown_codes_are_typed() -> None:
    for ok in (0x90, 0x9F):
        with pytest.raises(ValueError):
            status.error_for(ok)
    assert isinstance(status.error_for(0xEE), status.UndocumentedStatus)
    assert len(status.ERRORS) == 16
