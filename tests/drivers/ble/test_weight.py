"""Weight Measurement (0x2A9D)."""

from __future__ import annotations

import datetime as dt

import pytest

from drivers.ble.errors import MeasurementUnsuccessful
from drivers.ble.weight import decode_weight
from drivers.errors import OverlongFrame, TruncatedFrame
from firmware_sim.ble import encode
from protocol import codes


def values(m: object) -> dict[str, float]:
    return {o.code: o.value for o in m.observations}  # type: ignore[attr-defined]


# RonanB96/bluetooth-sig-python, tests/gatt/characteristics/test_weight_measurement.py. That library
# reads flag bit 3 as "BMI" and bit 4 as "height"; the Weight Scale spec has one bit (3) for
# "BMI and height" and bit 4 reserved. Its frames that agree with the spec decode the same here.


def test_third_party_basic_metric() -> None:
    assert values(decode_weight(bytes([0x00, 0xB0, 0x36]))) == {codes.WEIGHT: 70.0}


def test_third_party_imperial() -> None:
    (obs,) = decode_weight(bytes([0x01, 0x54, 0x3D])).observations
    assert (obs.original_value, obs.original_unit) == (157.0, "[lb_av]")
    assert obs.value == pytest.approx(71.21, abs=0.01) and obs.unit == "kg"


def test_third_party_time_stamp() -> None:
    m = decode_weight(bytes([0x02, 0xB0, 0x36, 0xE7, 0x07, 0x0C, 0x19, 0x0E, 0x1E, 0x2D]))
    assert m.device_time == "2023-12-25T14:30:45"


def test_third_party_full_imperial_frame_with_a_reserved_flag_bit() -> None:
    m = decode_weight(bytes([0x1F, 0x54, 0x3D, 0xE7, 0x07, 0x0C, 0x19, 0x0E, 0x1E, 0x2D, 0x03, 0xF5, 0x00,
                             0xA8, 0x02]))
    weight, bmi, height = m.observations
    assert (weight.original_value, bmi.value, height.original_value, height.original_unit) == (
        157.0, 24.5, 68.0, "[in_i]")
    assert height.value == pytest.approx(172.72, abs=0.01) and m.user_id == 3


def test_third_party_nonconforming_frames_are_rejected() -> None:
    # flags 0x0C: user id + "BMI only" (2 bytes) -- the spec sends BMI and height together
    with pytest.raises(TruncatedFrame):
        decode_weight(bytes([0x0C, 0xB0, 0x36, 0x05, 0xF5, 0x00]))
    # flags 0x10: "height only" -- bit 4 is reserved, so the height bytes are extra
    with pytest.raises(OverlongFrame):
        decode_weight(bytes([0x10, 0xB0, 0x36, 0xD6, 0x06]))


WHEN = dt.datetime(2024, 6, 1, 8, 0, 0)


def _frame(flags: int) -> bytes:
    imperial = bool(flags & 1)
    return encode.Weight(132.3 if imperial else 60.0, imperial=imperial, time=WHEN if flags & 2 else None,
                         user_id=4 if flags & 4 else None, bmi=22.0 if flags & 8 else None,
                         height=(65.0 if imperial else 1.651) if flags & 8 else None).encode()


@pytest.mark.parametrize("flags", range(16))
def test_every_flag_combination(flags: int) -> None:
    frame = _frame(flags)
    assert frame[0] == flags
    m = decode_weight(frame)
    got = values(m)
    assert got[codes.WEIGHT] == pytest.approx(60.0, abs=0.01)
    if flags & 8:
        assert got[codes.BMI] == 22.0
        assert got[codes.HEIGHT] == pytest.approx(165.1, abs=0.01)
    else:
        assert set(got) == {codes.WEIGHT}
    assert m.device_time == ("2024-06-01T08:00:00" if flags & 2 else None)
    assert m.user_id == (4 if flags & 4 else None)
    for cut in range(len(frame)):
        with pytest.raises(TruncatedFrame):
            decode_weight(frame[:cut])
    with pytest.raises(OverlongFrame):
        decode_weight(frame + b"\x00")


@pytest.mark.parametrize("flags", range(16))
def test_weight_ffff_is_measurement_unsuccessful(flags: int) -> None:
    frame = bytes([flags]) + b"\xff\xff" + _frame(flags)[3:]
    with pytest.raises(MeasurementUnsuccessful, match="measurement unsuccessful") as err:
        decode_weight(frame)
    assert err.value.reason == "measurement_unsuccessful" and err.value.raw == frame


def test_resolution_is_five_grams() -> None:
    assert values(decode_weight(bytes([0x00, 0x01, 0x00]))) == {codes.WEIGHT: 0.005}
    assert values(decode_weight(bytes([0x00, 0xFE, 0xFF]))) == {codes.WEIGHT: 327.67}
