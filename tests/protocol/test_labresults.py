"""Result display names, reference ranges and flags (protocol.labresults)."""

from __future__ import annotations

import pytest

from protocol.labresults import display_name, flag, parse_range


def test_display_names_come_from_the_code_tables_else_from_what_the_sender_wrote() -> None:
    assert (display_name("718-7", "zh-CN", "Hb"), display_name("718-7", "en", "Hb")) == ("血红蛋白", "Hemoglobin")
    assert display_name("8480-6", "zh-CN") == "收缩压"  # the vitals table (protocol.codes)
    assert display_name("L:FERR", "zh-CN", "铁蛋白") == "铁蛋白"
    assert display_name("L:FERR", "en") == "L:FERR"


@pytest.mark.parametrize(("text", "bounds"), [
    ("11.5-15.0", (11.5, 15.0)), (" 115 - 150 ", (115.0, 150.0)), ("3.5~9.5", (3.5, 9.5)), ("3.9至6.1", (3.9, 6.1)),
    ("<5.6", (None, 5.6)), ("≤ 5.6", (None, 5.6)), (">=60", (60.0, None)), ("-1.0-1.0", (-1.0, 1.0)),
    ("", None), ("阴性", None), ("15-11", None), ("1-2-3", None)])
def test_reference_ranges(text: str, bounds: tuple[float | None, float | None] | None) -> None:
    assert parse_range(text) == bounds


def test_the_senders_flag_wins_else_the_range_decides() -> None:
    assert flag("9.8", "11.5-15.0") == "L" and flag("16", "11.5-15.0") == "H" and flag("12", "11.5-15.0") == "N"
    assert flag("12", "11.5-15.0", ("HH",)) == "HH" and flag("12", "", (" ", "l")) == "L"
    assert flag("6.0", "<5.6") == "H" and flag("50", ">=60") == "L"
    assert flag("阴性", "阴性") is None and flag("7", "") is None  # nothing to judge by


def test_units_are_shown_as_people_read_them() -> None:
    """UCUM stays on the wire and in exports; screens show ×10⁹/L, µmol/L, mmHg."""
    from protocol.labresults import unit_symbol

    assert unit_symbol("10*9/L") == "×10⁹/L" and unit_symbol("umol/L") == "µmol/L"
    assert unit_symbol("mm[Hg]") == "mmHg" and unit_symbol("g/dL") == "g/dL"  # a plain unit is shown as sent
