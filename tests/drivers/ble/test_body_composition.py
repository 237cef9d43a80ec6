"""Body Composition Measurement (0x2A9C)."""

from __future__ import annotations

import datetime as dt

import pytest

from drivers.ble import body_composition as bc
from drivers.ble.body_composition import decode_body_composition
from drivers.ble.errors import MeasurementUnsuccessful
from drivers.errors import OverlongFrame, TruncatedFrame
from firmware_sim.ble import encode
from protocol import codes

# eisaev/blevalueparser, tests/bodycompositionmeasurementtest.cpp, FeaturesAll_SinglePacket_ReservedOdd
# (flags 0xAFFE: every field, reserved bits 13 and 15 set) and Imperial (flags 0xAFFF).
EISAEV_ALL = bytes.fromhex("feaf 1234 e707 0206 121c00 2a 2345 3456 4567 5678 6789 789a 89ab 9abc abcd")
EISAEV_IMPERIAL = bytes.fromhex("ffaf 1234 e707 0206 121c00 2a 2345 3456 4567 5678 6789 789a 89ab 9abc abcd")


def values(m: object) -> dict[str, float]:
    return {o.code: o.value for o in m.observations}  # type: ignore[attr-defined]


def test_eisaev_every_field_si() -> None:
    m = decode_body_composition(EISAEV_ALL)
    assert values(m) == pytest.approx({
        codes.BODY_FAT: 1333.0, bc.BASAL_METABOLISM: 17699, bc.MUSCLE_PERCENTAGE: 2206.8,
        bc.MUSCLE_MASS: 132.185, bc.FAT_FREE_MASS: 154.03, bc.SOFT_LEAN_MASS: 175.875,
        bc.BODY_WATER_MASS: 197.72, bc.IMPEDANCE: 4391.3, codes.WEIGHT: 241.41, codes.HEIGHT: 5265.1,
    })
    height = next(o for o in m.observations if o.code == codes.HEIGHT)
    assert (height.original_value, height.original_unit) == (52.651, "m")
    assert m.device_time == "2023-02-06T18:28:00" and m.user_id == 42
    assert m.status == ()


def test_eisaev_imperial() -> None:
    m = decode_body_composition(EISAEV_IMPERIAL)
    by_code = {o.code: o for o in m.observations}
    assert (by_code[bc.MUSCLE_MASS].original_value, by_code[bc.MUSCLE_MASS].original_unit) == (264.37, "[lb_av]")
    assert by_code[bc.MUSCLE_MASS].value == pytest.approx(119.915, abs=0.001)
    assert by_code[codes.WEIGHT].original_value == pytest.approx(482.82)
    assert (by_code[codes.HEIGHT].original_value, by_code[codes.HEIGHT].original_unit) == (5265.1, "[in_i]")


def test_eisaev_multiple_packet_minimal() -> None:
    """FeaturesNone_MultiplePacket_ReservedEven: flags 0x5000, body fat only."""
    m = decode_body_composition(bytes.fromhex("0050 1234"))
    assert values(m) == {codes.BODY_FAT: 1333.0}
    assert m.status == ("multiple_packet",)


def test_eisaev_measurement_unsuccessful() -> None:
    with pytest.raises(MeasurementUnsuccessful):
        decode_body_composition(bytes.fromhex("0000 ffff"))


FIELD_VALUES = {"basal_metabolism": 6000, "muscle_percentage": 35.5, "muscle_mass": 40.0, "fat_free_mass": 45.0,
                "soft_lean_mass": 42.0, "body_water_mass": 33.0, "impedance": 512.3, "weight": 60.0,
                "height": 1.62}


@pytest.mark.parametrize("block", range(16))
def test_every_flag_combination(block: int) -> None:
    """All 8192 combinations of the 13 defined flag bits, 512 per test."""
    for flags in range(block * 512, (block + 1) * 512):
        _check(flags)


def _check(flags: int) -> None:
    imperial = bool(flags & 1)
    fields = {name: FIELD_VALUES[name] for bit, name in encode.BODY_FIELDS if flags & bit}
    if imperial:
        fields = {k: (v * 2 if k in {"muscle_mass", "fat_free_mass", "soft_lean_mass", "body_water_mass", "weight"}
                      else 63.8 if k == "height" else v) for k, v in fields.items()}
    frame = encode.BodyComposition(
        25.0, imperial=imperial, time=dt.datetime(2024, 1, 1, 12) if flags & 2 else None,
        user_id=1 if flags & 4 else None, fields=fields, multiple_packet=bool(flags & 0x1000),
    ).encode()
    assert int.from_bytes(frame[:2], "little") == flags
    m = decode_body_composition(frame)
    assert len(m.observations) == 1 + len(fields)
    assert m.observations[0].value == 25.0
    assert (m.device_time is not None) == bool(flags & 2)
    assert (m.user_id == 1) == bool(flags & 4)
    assert ("multiple_packet" in m.status) == bool(flags & 0x1000)
    if flags % 97 == 0:  # truncation at every length for a spread of combinations
        for cut in range(len(frame)):
            with pytest.raises(TruncatedFrame):
                decode_body_composition(frame[:cut])
    with pytest.raises(OverlongFrame):
        decode_body_composition(frame + b"\x00")
