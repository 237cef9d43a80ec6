"""Canonical units keep the original value and unit."""

from __future__ import annotations

import pytest

from protocol.errors import UnitError
from protocol.units import to_canonical


@pytest.mark.parametrize(
    ("code", "value", "unit", "canonical", "ucum"),
    [
        ("8480-6", 16.0, "kPa", 120.0, "kPa"),
        ("8310-5", 98.6, "°F", 37.0, "[degF]"),
        ("29463-7", 132.3, "lb", 60.01, "[lb_av]"),
        ("8302-2", 63.0, "in", 160.02, "[in_i]"),
        ("8302-2", 1.655, "m", 165.5, "m"),
        ("8302-2", 1655, "mm", 165.5, "mm"),
    ],
)
def test_conversions_keep_the_original(code: str, value: float, unit: str, canonical: float, ucum: str) -> None:
    obs = to_canonical(code, value, unit)
    assert obs.value == pytest.approx(canonical, abs=0.01)
    assert (obs.original_value, obs.original_unit) == (value, ucum)


def test_canonical_unit_stores_no_original() -> None:
    obs = to_canonical("8480-6", 120, "mmHg")
    assert (obs.value, obs.unit, obs.original_value, obs.original_unit) == (120, "mm[Hg]", None, None)


def test_unknown_units_and_codes_are_typed_errors() -> None:
    with pytest.raises(UnitError, match="cannot convert"):
        to_canonical("8480-6", 1, "psi")
    with pytest.raises(UnitError, match="unknown observation code"):
        to_canonical("0000-0", 1, "cm")
