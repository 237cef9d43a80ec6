"""National ID numbers per GB 11643-1999."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import idnum
from protocol.errors import IdNumberError

# The standard's own example number and widely published test numbers.
VALID = ["11010519491231002X", "440524188001010014", "110101199003077774"]


@pytest.mark.parametrize("number", VALID)
def test_valid_numbers(number: str) -> None:
    assert idnum.normalise(number) == number
    assert idnum.check_character(number[:17]) == number[17]


def test_lower_case_x_is_accepted_and_normalised() -> None:
    assert idnum.normalise(" 11010519491231002x ") == "11010519491231002X"


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        ("110105194912310021", "check character"),
        ("11010519491331002X", "real date"),  # month 13
        ("11010519490230002X", "real date"),  # 30 February
        ("11010530001231002X", "out of range"),  # year 3000
        ("1101051949123100", "18 characters"),
        ("11010519491231002Y", "digit or X"),
        ("1101051949１231002X", "digit or X"),  # full-width digit
    ],
)
def test_invalid_numbers_say_why(number: str, reason: str) -> None:
    with pytest.raises(IdNumberError, match=reason):
        idnum.normalise(number)


@given(st.text(max_size=25))
def test_never_raises_anything_but_id_number_error(text: str) -> None:
    with contextlib.suppress(IdNumberError):
        idnum.normalise(text)


@given(st.integers(0, 10**17 - 1))
def test_every_computed_check_character_validates(n: int) -> None:
    first17 = f"11010519800101{n % 1000:03d}"
    number = first17 + idnum.check_character(first17)
    assert idnum.is_valid(number)


def test_birth_date_and_sex() -> None:
    assert str(idnum.birth_date("11010519491231002X")) == "1949-12-31"
    assert idnum.sex("11010519491231002X") == "2"  # 17th digit 2: female
    assert idnum.sex("440524188001010014") == "1"


def test_masking() -> None:
    assert idnum.mask("11010519491231002X") == "1101**********002X"
    assert idnum.mask_name("张三") == "张*"
    assert idnum.mask_name("欧阳娜娜") == "欧***"


def test_blind_index_is_keyed_and_stable() -> None:
    k1, k2 = b"k" * 32, b"j" * 32
    a = idnum.blind_index(k1, "11010519491231002x")
    assert a == idnum.blind_index(k1, "11010519491231002X")
    assert a != idnum.blind_index(k2, "11010519491231002X")
    assert "11010519491231002X" not in a
    with pytest.raises(IdNumberError, match="32 bytes"):
        idnum.blind_index(b"short", "11010519491231002X")
