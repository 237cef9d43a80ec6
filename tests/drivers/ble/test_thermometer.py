"""Temperature Measurement (0x2A1C)."""

from __future__ import annotations

import datetime as dt

import pytest

from drivers.ble.thermometer import SITES, decode_temperature
from drivers.errors import InvalidValue, OverlongFrame, TruncatedFrame
from firmware_sim.ble import encode
from protocol import codes


def test_nordic_vector() -> None:
    """NordicSemiconductor/Android-BLE-Common-Library,
    ble-common/src/test/java/no/nordicsemi/android/ble/common/callback/ht/TemperatureMeasurementDataCallbackTest.java
    (37.60 Celsius, 2012-12-05 11:50:27, finger)."""
    m = decode_temperature(bytes([0x06, 0xB0, 0x0E, 0x00, 0xFE, 0xDC, 0x07, 0x0C, 0x05, 0x0B, 0x32, 0x1B, 0x04]))
    (obs,) = m.observations
    assert (obs.code, obs.value, obs.unit, obs.original_value) == (codes.TEMPERATURE, 37.6, "Cel", None)
    assert m.device_time == "2012-12-05T11:50:27"
    assert m.status == ("site_finger",)
    assert m.kind == "temperature"


def test_nordic_invalid_vector_is_truncated() -> None:
    """Same test class, onInvalidDataReceived: the type byte the flags promise is missing."""
    with pytest.raises(TruncatedFrame, match="temperature type"):
        decode_temperature(bytes([0x06, 0xB0, 0x0E, 0x00, 0xFE, 0xDC, 0x07, 0x0C, 0x05, 0x0B, 0x32, 0x1B]))


WHEN = dt.datetime(2024, 1, 2, 3, 4, 5)


def _frame(flags: int) -> bytes:
    value = 98.6 if flags & 1 else 37.0
    return encode.Temperature(value, fahrenheit=bool(flags & 1), time=WHEN if flags & 2 else None,
                              site=2 if flags & 4 else None).encode()


@pytest.mark.parametrize("flags", range(8))
def test_every_flag_combination(flags: int) -> None:
    frame = _frame(flags)
    assert frame[0] == flags
    m = decode_temperature(frame)
    (obs,) = m.observations
    assert obs.value == pytest.approx(37.0, abs=0.01) and obs.unit == "Cel"
    assert (obs.original_value, obs.original_unit) == ((98.6, "[degF]") if flags & 1 else (None, None))
    assert m.device_time == ("2024-01-02T03:04:05" if flags & 2 else None)
    assert m.status == (("site_body",) if flags & 4 else ())
    for cut in range(len(frame)):
        with pytest.raises(TruncatedFrame):
            decode_temperature(frame[:cut])
    with pytest.raises(OverlongFrame):
        decode_temperature(frame + b"\x01")


@pytest.mark.parametrize("site", range(256))
def test_every_site_code(site: int) -> None:
    m = decode_temperature(encode.Temperature(36.6, site=site).encode())
    assert m.status == (f"site_{SITES[site]}" if site in SITES else f"site_unknown_{site}",)


@pytest.mark.parametrize("special", ["nan", "nres", "+inf", "-inf", "reserved"])
def test_special_temperature_rejects_the_frame(special: str) -> None:
    frame = encode.Temperature(special).encode()
    with pytest.raises(InvalidValue, match="temperature is") as err:
        decode_temperature(frame)
    assert err.value.raw == frame


def test_negative_exponent_and_negative_mantissa() -> None:
    assert decode_temperature(encode.Temperature(-0.5).encode()).observations[0].value == -0.5
