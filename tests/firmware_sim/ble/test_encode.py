"""The simulator's encoder reproduces the specification's and third parties' bytes on its own."""

from __future__ import annotations

import datetime as dt

import pytest

from firmware_sim.ble import encode


@pytest.mark.parametrize(
    ("value", "exponent", "wire"),
    [(18.9, None, "bdf0"), (138, 0, "8a00"), (15.9, -1, "9ff0"), (-1, 0, "ff0f"), (0, None, "0000"),
     (123000, None, "7b30"), (0.0000012, None, "0c90")],
)
def test_sfloat(value: float, exponent: int | None, wire: str) -> None:
    assert encode.sfloat(value, exponent).hex() == wire


@pytest.mark.parametrize(("name", "wire"), [("nan", "ff07"), ("nres", "0008"), ("+inf", "fe07"), ("-inf", "0208"),
                                            ("reserved", "0108")])
def test_sfloat_special(name: str, wire: str) -> None:
    assert encode.sfloat(name).hex() == wire


@pytest.mark.parametrize(("name", "wire"), [("nan", "ffff7f00"), ("nres", "00008000"), ("+inf", "feff7f00"),
                                            ("-inf", "02008000"), ("reserved", "01008000")])
def test_float_special(name: str, wire: str) -> None:
    assert encode.float32(name).hex() == wire


def test_float_worked_example() -> None:
    assert encode.float32(37.6, -2).hex() == "b00e00fe"  # devices.md; Nordic TemperatureMeasurement test


def test_out_of_range() -> None:
    with pytest.raises(ValueError):
        encode.sfloat(2046, 0)
    with pytest.raises(ValueError):
        encode.sfloat(1e20)
    assert encode.sfloat(2046).hex() == "cd10"  # 205 x 10^1: rounded half-even to fit


def test_nordic_blood_pressure_vector() -> None:
    """NordicSemiconductor/Android-BLE-Common-Library BloodPressureMeasurementDataCallbackTest,
    onBloodPressureMeasurementReceived_some: 18.9/11.0/15.9 kPa, pulse 60, status 0b010010."""
    frame = encode.BloodPressure(18.9, 11, 15.9, kpa=True, pulse=60, status=0b010010).encode()
    assert frame == bytes([0x15, 0xBD, 0xF0, 0x0B, 0x00, 0x9F, 0xF0, 0x3C, 0x00, 0x12, 0x00])


def test_temperature_layout() -> None:
    frame = encode.Temperature(37.6, time=dt.datetime(2012, 12, 5, 11, 50, 27), site=4).encode()
    assert frame[0] == 0x06 and frame[5:] == bytes([0xDC, 0x07, 0x0C, 0x05, 0x0B, 0x32, 0x1B, 0x04])


def test_weight_layout() -> None:
    assert encode.Weight(70.0).encode() == bytes([0x00, 0xB0, 0x36])
    assert encode.Weight(157.0, imperial=True).encode() == bytes([0x01, 0x54, 0x3D])
    assert encode.Weight(None).encode() == bytes([0x00, 0xFF, 0xFF])
    assert encode.Weight(70.0, bmi=24.5, height=1.75).encode() == bytes([0x08, 0xB0, 0x36, 0xF5, 0x00, 0xD6, 0x06])


def test_body_composition_layout() -> None:
    """eisaev/blevalueparser bodycompositionmeasurementtest.cpp, FeaturesNone_MultiplePacket (body fat 0x3412)."""
    assert encode.BodyComposition(1333.0, multiple_packet=True).encode() == bytes.fromhex("0010 1234")
    with pytest.raises(ValueError):
        encode.BodyComposition(20.0, fields={"bone_mass": 3.0}).encode()
