"""IEEE 11073-20601 SFLOAT/FLOAT: worked examples, every special value, no exponent bias."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble.ieee11073 import FLOAT_SPECIAL, SFLOAT_SPECIAL, Special, float32, sfloat
from firmware_sim.ble import encode


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        # devices.md worked example; Wireshark ftype-ieee-11073-float.c; Nordic sfloat.h
        (0xF0BD, 18.9),
        # Nordic Android-BLE-Common-Library BloodPressureMeasurementDataCallbackTest:
        # setValue(159, -1, FORMAT_SFLOAT) -> 9F F0; setValue(138, 0, ...) -> 8A 00
        (0xF09F, 15.9),
        (0x008A, 138.0),
        (0x000B, 11.0),
        (0x003C, 60.0),
        (0x0000, 0.0),
        (0x0FFF, -1.0),  # mantissa is two's complement
        (0x0803, -2045.0),
        (0x07FD, 2045.0),
        (0x1001, 10.0),  # exponent +1
        (0x7001, 10_000_000.0),  # largest exponent +7
        (0x8001, 1e-8),  # exponent -8, the most negative
        (0xE4D2, 12.34),  # 1234 x 10^-2
    ],
)
def test_sfloat_examples(raw: int, value: float) -> None:
    assert sfloat(raw) == value


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        # devices.md; Nordic TemperatureMeasurementDataCallbackTest bytes B0 0E 00 FE = 37.60
        (0xFE000EB0, 37.6),
        (0xFF000172, 37.0),
        (0x00000000, 0.0),
        (0x00FFFFFF, -1.0),
        (0x01000001, 10.0),
        (0x80000001, 1e-128),
        (0x7F000001, 1e127),
    ],
)
def test_float_examples(raw: int, value: float) -> None:
    assert float32(raw) == value


@pytest.mark.parametrize(("raw", "special"), sorted(SFLOAT_SPECIAL.items()))
def test_every_sfloat_special_value(raw: int, special: Special) -> None:
    assert sfloat(raw) is special


@pytest.mark.parametrize(("raw", "special"), sorted(FLOAT_SPECIAL.items()))
def test_every_float_special_value(raw: int, special: Special) -> None:
    assert float32(raw) is special


def test_special_names() -> None:
    assert [s.code for s in Special] == ["nan", "nres", "pos_inf", "neg_inf", "reserved"]


def test_no_exponent_bias() -> None:
    """bluetooth-sig-python (RonanB96, tests/gatt/characteristics/test_blood_pressure_measurement.py)
    encodes 120 mmHg as bytes 78 80 and reads it back as 120: that is exponent 0x8 read with a
    bias. By the standard 0x8078 is 120 x 10^-8."""
    assert sfloat(0x8078) == pytest.approx(120e-8)
    assert sfloat(0x0078) == 120.0


@pytest.mark.parametrize("raw", [-1, 0x10000])
def test_sfloat_rejects_out_of_range_input(raw: int) -> None:
    with pytest.raises(ValueError):
        sfloat(raw)


@given(st.integers(0, 0xFFFF))
def test_every_sfloat_matches_the_definition(raw: int) -> None:
    got = sfloat(raw)
    if raw in SFLOAT_SPECIAL:
        assert isinstance(got, Special)
        return
    exponent = (raw >> 12) - 16 if raw >> 12 >= 8 else raw >> 12
    mantissa = (raw & 0xFFF) - 0x1000 if raw & 0x800 else raw & 0xFFF
    assert isinstance(got, float)
    assert math.isclose(got, mantissa * 10.0**exponent, rel_tol=1e-12)


@given(st.integers(0, 0xFFFFFFFF))
def test_every_float_matches_the_definition(raw: int) -> None:
    got = float32(raw)
    if raw in FLOAT_SPECIAL:
        assert isinstance(got, Special)
        return
    exponent = (raw >> 24) - 256 if raw >> 24 >= 128 else raw >> 24
    mantissa = (raw & 0xFFFFFF) - 0x1000000 if raw & 0x800000 else raw & 0xFFFFFF
    assert isinstance(got, float)
    assert math.isclose(got, mantissa * 10.0**exponent, rel_tol=1e-12)


@given(st.decimals(min_value="-204.5", max_value="204.5", places=1, allow_nan=False))
def test_simulator_sfloat_round_trips(value: object) -> None:
    """The simulator's independent encoder and the decoder agree (SFLOAT holds 4 digits)."""
    number = float(str(value))
    assert sfloat(encode.sfloat_raw(number)) == number


@given(st.decimals(min_value="-83886.05", max_value="83886.05", places=2, allow_nan=False))
def test_simulator_float_round_trips(value: object) -> None:
    number = float(str(value))
    assert float32(encode.float_raw(number)) == number
