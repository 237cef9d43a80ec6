"""Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36)."""

from __future__ import annotations

import datetime as dt

import pytest

from drivers.ble.bp import decode_bp, decode_icp, status_strings
from drivers.errors import FrameError, InvalidValue, OverlongFrame, TruncatedFrame
from firmware_sim.ble import encode
from protocol import codes


def values(m: object) -> dict[str, float]:
    return {o.code: o.value for o in m.observations}  # type: ignore[attr-defined]


# --- third-party byte vectors -----------------------------------------------------------
# NordicSemiconductor/Android-BLE-Common-Library,
# ble-common/src/test/java/no/nordicsemi/android/ble/common/callback/bps/BloodPressureMeasurementDataCallbackTest.java


def test_nordic_full() -> None:
    frame = bytes([0x1E, 0x8A, 0x00, 0x58, 0x00, 0x78, 0x00, 0x00, 0x00, 0x04, 0x11, 0x14, 0x29, 0x3B,
                   0x3C, 0x00, 0x01, 0x27, 0x00])
    m = decode_bp(frame)
    assert values(m) == {codes.SYSTOLIC: 138, codes.DIASTOLIC: 88, codes.MEAN_PRESSURE: 120, codes.PULSE: 60}
    assert m.user_id == 1
    # year 0 = unknown: the device time cannot be placed, and the reading says so
    assert m.device_time is None
    assert m.status == ("device_time_unknown", "body_movement", "cuff_too_loose", "irregular_pulse",
                        "improper_position")
    assert m.kind == "blood_pressure" and not m.live and m.raw == frame


def test_nordic_some_kpa() -> None:
    frame = bytes([0x15, 0xBD, 0xF0, 0x0B, 0x00, 0x9F, 0xF0, 0x3C, 0x00, 0x12, 0x00])
    m = decode_bp(frame)
    sys_, dia, mean, pulse = m.observations
    assert (sys_.original_value, sys_.original_unit) == (18.9, "kPa")
    assert sys_.value == pytest.approx(141.8, abs=0.05) and sys_.unit == "mm[Hg]"
    assert (dia.original_value, mean.original_value) == (11.0, 15.9)
    assert pulse.value == 60 and pulse.original_value is None
    assert m.status == ("cuff_too_loose", "pulse_below_lower_limit")
    assert m.user_id is None and m.device_time is None


def test_nordic_minimal() -> None:
    m = decode_bp(bytes([0x00, 0xBD, 0xF0, 0x0B, 0x00, 0x9F, 0xF0]))
    assert values(m) == {codes.SYSTOLIC: 18.9, codes.DIASTOLIC: 11.0, codes.MEAN_PRESSURE: 15.9}
    assert m.status == ()


@pytest.mark.parametrize(
    "frame",
    [bytes([1, 2, 3, 4, 5, 6]),  # onInvalidDataReceived_toShort
     bytes([3, 2, 3, 4, 5, 6, 7])],  # onInvalidDataReceived_noTimestamp: flags promise a time stamp
)
def test_nordic_invalid(frame: bytes) -> None:
    with pytest.raises(TruncatedFrame) as err:
        decode_bp(frame)
    assert err.value.raw == frame


# Same library, IntermediateCuffPressureDataCallbackTest.java
def test_nordic_icp_full() -> None:
    m = decode_icp(bytes([0x1E, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x11, 0x14, 0x29, 0x3B,
                          0x3C, 0x00, 0x01, 0x27, 0x00]))
    assert m.kind == "cuff_pressure" and m.live
    assert values(m) == {codes.CUFF_PRESSURE: 4.0, codes.PULSE: 60.0}
    assert m.user_id == 1


def test_nordic_icp_some_and_minimal() -> None:
    some = decode_icp(bytes([0x15, 0x6F, 0xF0, 0x00, 0x00, 0x00, 0x00, 0x3C, 0x0, 0x12, 0x0]))
    assert some.observations[0].original_value == 11.1 and some.observations[0].original_unit == "kPa"
    minimal = decode_icp(bytes([0x00, 0xD7, 0xF0, 0x00, 0x00, 0x00, 0x00]))
    assert values(minimal) == {codes.CUFF_PRESSURE: 21.5}


# --- every flag combination ---------------------------------------------------------------

WHEN = dt.datetime(2024, 3, 15, 14, 30, 45)


def _frame(flags: int) -> bytes:
    return encode.BloodPressure(
        systolic=16.0 if flags & 1 else 120, diastolic=10.7 if flags & 1 else 80, mean=12.0 if flags & 1 else 93,
        kpa=bool(flags & 1), time=WHEN if flags & 2 else None, pulse=72 if flags & 4 else None,
        user_id=3 if flags & 8 else None, status=0x0005 if flags & 16 else None,
    ).encode()


@pytest.mark.parametrize("flags", range(32))
def test_every_flag_combination(flags: int) -> None:
    frame = _frame(flags)
    assert frame[0] == flags
    m = decode_bp(frame)
    got = values(m)
    assert set(got) == {codes.SYSTOLIC, codes.DIASTOLIC, codes.MEAN_PRESSURE} | ({codes.PULSE} if flags & 4 else set())
    if flags & 1:
        assert got[codes.SYSTOLIC] == pytest.approx(120.0, abs=0.05)
        assert m.observations[0].original_unit == "kPa"
    else:
        assert got[codes.SYSTOLIC] == 120 and m.observations[0].original_unit is None
    assert m.device_time == ("2024-03-15T14:30:45" if flags & 2 else None)
    assert m.user_id == (3 if flags & 8 else None)
    assert m.status == (("body_movement", "irregular_pulse") if flags & 16 else ())


@pytest.mark.parametrize("flags", range(32))
def test_every_truncation_and_extension_is_rejected(flags: int) -> None:
    frame = _frame(flags)
    for cut in range(len(frame)):
        with pytest.raises(TruncatedFrame):
            decode_bp(frame[:cut])
        with pytest.raises(TruncatedFrame):
            decode_icp(frame[:cut])
    with pytest.raises(OverlongFrame):
        decode_bp(frame + b"\x00")


@pytest.mark.parametrize("bits", range(64))
def test_every_status_combination(bits: int) -> None:
    got = status_strings(bits)
    assert ("body_movement" in got) == bool(bits & 1)
    assert ("cuff_too_loose" in got) == bool(bits & 2)
    assert ("irregular_pulse" in got) == bool(bits & 4)
    assert ("improper_position" in got) == bool(bits & 32)
    pulse = {0: None, 1: "pulse_above_upper_limit", 2: "pulse_below_lower_limit", 3: "pulse_range_reserved"}
    expected = pulse[(bits >> 3) & 3]
    assert [s for s in got if s.startswith("pulse_")] == ([expected] if expected else [])


def test_reserved_status_bits_are_ignored() -> None:
    assert status_strings(0xFFC0) == []


# --- special values ---------------------------------------------------------------------------

SPECIALS = ["nan", "nres", "+inf", "-inf", "reserved"]
CODE = {"nan": "nan", "nres": "nres", "+inf": "pos_inf", "-inf": "neg_inf", "reserved": "reserved"}


@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("field", ["systolic", "diastolic"])
def test_special_primary_value_rejects_the_frame(field: str, special: str) -> None:
    kwargs: dict[str, object] = {"systolic": 120, "diastolic": 80, "mean": 93, field: special}
    frame = encode.BloodPressure(**kwargs).encode()  # type: ignore[arg-type]
    with pytest.raises(InvalidValue, match=field) as err:
        decode_bp(frame)
    assert err.value.raw == frame and err.value.reason == "invalid_value"


@pytest.mark.parametrize("special", SPECIALS)
def test_special_mean_and_pulse_are_left_out_and_reported(special: str) -> None:
    m = decode_bp(encode.BloodPressure(120, 80, special, pulse=special).encode())
    assert set(values(m)) == {codes.SYSTOLIC, codes.DIASTOLIC}
    assert m.status == (f"mean_arterial_pressure_{CODE[special]}", f"pulse_rate_{CODE[special]}")


@pytest.mark.parametrize("special", SPECIALS)
def test_icp_ignores_unused_fields_but_not_its_pressure(special: str) -> None:
    assert values(decode_icp(encode.BloodPressure(80, special, special).encode())) == {codes.CUFF_PRESSURE: 80}
    with pytest.raises(InvalidValue):
        decode_icp(encode.BloodPressure(special).encode())


# --- time stamp and user -----------------------------------------------------------------------


def test_unknown_user_is_none() -> None:
    assert decode_bp(encode.BloodPressure(120, 80, 93, user_id=0xFF).encode()).user_id is None


@pytest.mark.parametrize(
    "stamp",
    [
        "e807 0d 01 000000",  # month 13
        "e807 02 1e 000000",  # 30 February
        "e807 01 01 180000",  # hour 24
        "e807 01 01 003c00",  # minute 60
        "e807 01 01 00003c",  # second 60
        "0100 01 01 000000",  # year 1
    ],
)
def test_impossible_time_stamp_is_rejected(stamp: str) -> None:
    frame = bytes([0x02]) + encode.sfloat(120, 0) + encode.sfloat(80, 0) + encode.sfloat(93, 0) + bytes.fromhex(stamp)
    with pytest.raises(InvalidValue, match="time stamp"):
        decode_bp(frame)


@pytest.mark.parametrize("stamp", ["0000 05 01 090000", "e807 00 01 090000", "e807 05 00 090000"])
def test_unknown_date_parts_mean_unknown_device_time(stamp: str) -> None:
    frame = bytes([0x02]) + encode.sfloat(120, 0) + encode.sfloat(80, 0) + encode.sfloat(93, 0) + bytes.fromhex(stamp)
    m = decode_bp(frame)
    assert m.device_time is None and m.status == ("device_time_unknown",)


def test_errors_are_frame_errors() -> None:
    for frame in (b"", b"\x00", _frame(31)[:-1]):
        with pytest.raises(FrameError):
            decode_bp(frame)

