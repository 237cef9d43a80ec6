"""Line dialects: Tanita-style key/value CSV, Detecto-style, Accutorr-style BP.

Worked examples: devices.md (Detecto solo manual: ``12:00,08/07/15,21.5,5'03.0",132.3lb``)
and the Datascope Accutorr service manual, "PC Interface", p. 1-53 (manualslib.de,
Datascope Accutorr 3): ``P:--,85,120, 45, 80,000,010,000, 5`` with fields SaO2, pulse,
systolic, mean, diastolic, status bytes 0-2, minutes since the last measurement.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers import registry
from drivers.base import Measurement
from drivers.errors import BadChecksum, FrameError, InvalidValue, OverlongFrame, TruncatedFrame
from drivers.stations import accutorr, detecto, tanita
from drivers.stations.common import LineSplitter, Signal

ACCUTORR_MANUAL = b"P:--,85,120, 45, 80,000,010,000, 5"
DETECTO_MANUAL = b"12:00,08/07/15,21.5,5'03.0\",132.3lb"


def tanita_line(weight: str = "55.4", extra: str = "", cs: bool = True) -> bytes:
    body = f'{{0,16,~0,1,~1,1,~2,1,MO,"DC-217A",DT,"05/03/2024",Ti,"09:41",GE,2,AG,34,Hm,158.0,Wk,{weight},{extra}'
    if not cs:
        return body.rstrip(",").encode()
    x = 0
    for b in body.encode():
        x ^= b
    return f"{body}CS,{x:02X}".encode()


def values(m: object) -> dict[str, float]:
    assert isinstance(m, Measurement)
    return {o.code: o.value for o in m.observations}


def test_accutorr_manual_example() -> None:
    m, minutes = accutorr.parse_line(ACCUTORR_MANUAL)  # type: ignore[misc]
    assert values(m) == {"8480-6": 120, "8462-4": 80, "8478-0": 45, "8867-4": 85}
    assert m.kind == "blood_pressure" and minutes == 5 and m.status == ("status_bytes=000,010,000",)


def test_accutorr_special_lines() -> None:
    assert accutorr.parse_line(b"P:--,--,--,--,--,000,000,000,--") == Signal("empty")
    assert accutorr.parse_line(b">") == Signal("prompt")
    assert accutorr.parse_line(b"ACCUTORR PC Interface is ready") == Signal("prompt")
    assert accutorr.parse_line(b"L:100,090,120,050,160,090,110,060,100,050") is None
    (m, _) = accutorr.parse_line(b"P:97,--,120, 93, 80,000,000,000, 0")  # type: ignore[misc]
    assert "8867-4" not in values(m) and m.status == ()


@pytest.mark.parametrize(("line", "error"), [
    (b"P:--,85,--, 45, 80,000,010,000, 5", InvalidValue),
    (b"P:--,85,120, 45", TruncatedFrame),
    (b"P:--,85,120, 45, 80,000,010,000, 5,7", OverlongFrame),
    (b"P:--,85,1x0, 45, 80,000,010,000, 5", InvalidValue),
    (b"P:--,85,nan, 45, 80,000,010,000, 5", InvalidValue),
    (b"Q:--,85,120", FrameError),
    (b"P:\xff", FrameError),
])
def test_accutorr_bad_lines(line: bytes, error: type[FrameError]) -> None:
    with pytest.raises(error):
        accutorr.parse_line(line)


def test_accutorr_decoder_reports_each_measurement_once() -> None:
    d = accutorr.decoder()
    poll = ACCUTORR_MANUAL + b"\r\n>"
    first = d.feed_items(b"ACCUTORR PC Interface is ready\r\n>" + poll + poll)
    assert [type(x).__name__ for x in first] == ["Signal", "Signal", "Measurement", "Signal", "Signal"]
    again = b"P:--,85,120, 45, 80,000,010,000, 0\r\n"  # elapsed went back: a new measurement
    assert [type(x).__name__ for x in d.feed_items(again)] == ["Measurement"]
    d.reset()  # a reconnect must not repeat it
    assert d.feed(again) == []


def test_detecto_manual_example_in_imperial_units() -> None:
    m = detecto.DetectoParser()(DETECTO_MANUAL)
    assert isinstance(m, Measurement) and m.kind == "height_weight" and m.device_time == "2015-08-07T12:00:00"
    height, weight, bmi = m.observations
    assert (height.value, height.original_value, height.original_unit) == (160.02, 63.0, "[in_i]")
    assert (weight.value, weight.original_value, weight.original_unit) == (60.01, 132.3, "[lb_av]")
    assert bmi.value == 21.5


def test_detecto_variants() -> None:
    p = detecto.DetectoParser(detecto.DetectoOptions(date_order="dmy"))
    m = p(b"07:05,31/12/24,--,172.5cm,70.2kg")
    assert values(m) == {"8302-2": 172.5, "29463-7": 70.2} and m.device_time == "2024-12-31T07:05:00"  # type: ignore[union-attr]
    m = p(b"07:05,31/12/24,,--,70.2kg")
    assert isinstance(m, Measurement) and m.kind == "weight"
    assert p(b"07:05,31/12/24,--,--,0.0lb") == Signal("empty")


@pytest.mark.parametrize(("line", "error"), [
    (b"12:00,08/07/15,21.5,5'13.0\",132.3lb", InvalidValue),
    (b"12:00,08/07/15,21.5,5'03.0\",--lb", InvalidValue),
    (b"12:00,08/07/15,21.5,5'03.0\",-3lb", InvalidValue),
    (b"12:00,08/07/15,21.5,five feet,132.3lb", InvalidValue),
    (b"25:00,08/07/15,21.5,5'03.0\",132.3lb", InvalidValue),
    (b"12:00,13/32/15,21.5,5'03.0\",132.3lb", InvalidValue),
    (b"12:00,08/07/15,21.5", TruncatedFrame),
    (b"12:00,08/07/15,21.5,5'03.0\",132.3lb,x", OverlongFrame),
    (b"12:00,08/07/15,NaN,5'03.0\",132.3lb", InvalidValue),
])
def test_detecto_bad_lines(line: bytes, error: type[FrameError]) -> None:
    with pytest.raises(error):
        detecto.DetectoParser()(line)


def test_tanita_key_value_line_with_checksum() -> None:
    m = tanita.TanitaParser()(tanita_line(extra="MI,22.2,FW,27.5,"))
    assert values(m) == {"8302-2": 158.0, "29463-7": 55.4, "39156-5": 22.2, "41982-0": 27.5}
    assert m.kind == "body_composition" and m.device_time == "2024-03-05T09:41:00"  # type: ignore[union-attr]
    plain = tanita.TanitaParser()(tanita_line(cs=False))
    assert isinstance(plain, Measurement) and plain.kind == "height_weight"


def test_tanita_special_values_and_errors() -> None:
    parse = tanita.TanitaParser()
    assert parse(tanita_line("0.0")) == Signal("empty")
    with pytest.raises(InvalidValue):
        parse(tanita_line("--"))
    with pytest.raises(BadChecksum):
        parse(tanita_line().replace(b"CS,", b"CS,0"))
    with pytest.raises(TruncatedFrame):
        parse(b'{0,16,MO,"DC-217A",Hm')
    with pytest.raises(TruncatedFrame, match="weight"):
        parse(b"{0,16,Hm,158.0")
    with pytest.raises(FrameError):
        parse(b"{0,16,~0,1")
    ignore = tanita.TanitaParser(tanita.TanitaOptions(checksum="ignore"))
    assert isinstance(ignore(tanita_line().replace(b"CS,", b"CS,0")), Measurement)


def test_line_splitter_bounds_and_flush() -> None:
    s = LineSplitter(max_len=8)
    out = s.feed(b"abc\r\n0123456789ABC\r\nok\n")
    assert out[0] == b"abc" and isinstance(out[1], OverlongFrame) and out[2] == b"ok"
    assert s.feed(b"partial") == [] and isinstance(s.flush()[0], TruncatedFrame)


@pytest.mark.parametrize(("name", "line"), [
    ("tanita-csv", tanita_line() + b"\r\n"), ("detecto", DETECTO_MANUAL + b"\r"), ("accutorr-bp", ACCUTORR_MANUAL),
])
def test_registry_codecs(name: str, line: bytes) -> None:
    (m,) = registry.codecs()[name].decode(line)
    assert isinstance(m, Measurement)


DECODERS = [tanita.decoder, detecto.decoder, accutorr.decoder]


@pytest.mark.parametrize("make", DECODERS)
@given(data=st.binary(max_size=600))
def test_fuzz_no_unexpected_exception(make: object, data: bytes) -> None:
    d = make()  # type: ignore[operator]
    for x in d.feed_items(data) + d.flush():
        assert isinstance(x, Measurement | FrameError | Signal)


LINES = [(detecto.decoder, DETECTO_MANUAL), (tanita.decoder, tanita_line()),
         (accutorr.decoder, ACCUTORR_MANUAL)]


@pytest.mark.parametrize(("make", "line"), LINES)
@given(noise=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=6),
       chunk=st.integers(1, 64))
def test_fuzz_resync_on_the_next_line(make: Any, line: bytes, noise: list[bytes], chunk: int) -> None:
    d = make()
    stream = b"".join(n + b"\r\n" + line + b"\r\n" for n in noise)
    out = [x for i in range(0, len(stream), chunk) for x in d.feed_items(stream[i:i + chunk])] + d.flush()
    found = sum(isinstance(x, Measurement) for x in out)
    # the BP monitor repeats its last result on every poll: the decoder reports it once
    assert found == (min(1, len(noise)) if make is accutorr.decoder else len(noise))
