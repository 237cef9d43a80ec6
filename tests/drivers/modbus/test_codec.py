"""Register words -> Measurement, through a configured map (pure, no transport)."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import FrameError, InvalidValue, OverlongFrame, TruncatedFrame
from drivers.modbus.codec import Deduplicator, bytes_to_words, decode, words_to_bytes
from drivers.modbus.example import EXAMPLE_MAP, decode_example_block
from drivers.modbus.regmap import parse_register_map


def one_field(**field: Any) -> Any:
    """A map: ready at 0, the field at 1 (and 2)."""
    return parse_register_map({"ready": {"address": 0}, "registers": [{"address": 1, **field}]})


def values(regmap: Any, words: list[int]) -> list[tuple[str, float, str, float | None, str | None]]:
    frame = decode(regmap, words)
    assert frame.measurement is not None, frame.error
    return [(o.code, o.value, o.unit, o.original_value, o.original_unit) for o in frame.measurement.observations]


def test_the_worked_example_of_docs_fieldbus() -> None:
    # docs/fieldbus.md §1: 0001 0007 0000 0677 4284CCCD 00F4
    [m] = decode_example_block(bytes.fromhex("0001 0007 0000 0677 4284CCCD 00F4"))
    assert m.kind == "height_weight"
    assert [(o.code, o.value, o.unit) for o in m.observations] == [
        ("8302-2", 165.5, "cm"), ("29463-7", 66.4, "kg"), ("39156-5", 24.4, "kg/m2")]
    assert m.raw == bytes.fromhex("0001 0007 0000 0677 4284CCCD 00F4")


def test_ieee754_float_vector() -> None:
    # 123.456 as IEEE 754 single precision is 0x42F6E979 (any IEEE 754 converter, e.g. h-schmidt.net)
    assert values(one_field(type="f32", code="29463-7", unit="kg"), [1, 0x42F6, 0xE979])[0][1] == 123.456
    assert values(one_field(type="f32", word_order="little", code="29463-7", unit="kg"),
                  [1, 0xE979, 0x42F6])[0][1] == 123.456


@pytest.mark.parametrize(("field", "words", "expected"), [
    ({"type": "u16", "scale": 0.1}, [0xFFFF], 6553.5),  # implausible, still emitted: the hub flags it
    ({"type": "i16", "scale": 0.1}, [0xFFF6], -1.0),
    ({"type": "u32", "scale": 0.01}, [0x0001, 0x0000], 655.36),
    ({"type": "u32", "scale": 0.01, "word_order": "little"}, [0x0000, 0x0001], 655.36),
    ({"type": "i32"}, [0xFFFF, 0xFF38], -200.0),
    ({"type": "u16", "scale": 0.1, "offset": 100.0}, [655], 165.5),
])
def test_register_types_scale_and_offset(field: dict[str, Any], words: list[int], expected: float) -> None:
    regmap = one_field(code="8302-2", unit="cm", **field)
    assert values(regmap, [1, *words])[0][1] == expected


def test_device_units_are_converted_and_the_original_kept() -> None:
    regmap = one_field(type="u32", code="29463-7", unit="g")
    assert values(regmap, [1, 0x0001, 0x0366]) == [("29463-7", 66.406, "kg", 66406.0, "g")]
    regmap = one_field(type="u16", code="29463-7", unit="lb", scale=0.1)
    assert values(regmap, [1, 1464]) == [("29463-7", 66.406, "kg", 146.4, "[lb_av]")]


def test_nothing_ready_means_no_measurement() -> None:
    frame = decode(EXAMPLE_MAP, [0, 7, 7, 1655, 0x4284, 0xCCCD, 244])
    assert (frame.ready, frame.sequence, frame.measurement, frame.error) == (False, 7, None, None)


def test_a_ready_measurement_holding_nan_comes_back_as_an_error_with_its_sequence() -> None:
    frame = decode(EXAMPLE_MAP, [1, 9, 8, 1700, 0x7FC0, 0x0000, 0xFFFF])
    assert frame.ready and frame.sequence == 9 and frame.measurement is None
    assert isinstance(frame.error, InvalidValue) and "29463-7" in str(frame.error)
    assert frame.error.raw == words_to_bytes([1, 9, 8, 1700, 0x7FC0, 0x0000, 0xFFFF])
    with pytest.raises(InvalidValue):
        decode_example_block(frame.raw)


def test_truncated_and_overlong_blocks_are_rejected() -> None:
    with pytest.raises(TruncatedFrame) as short:
        decode(EXAMPLE_MAP, [1, 7, 0, 1655, 0x4284, 0xCCCD])
    assert short.value.reason == "truncated" and short.value.raw
    with pytest.raises(OverlongFrame):
        decode(EXAMPLE_MAP, [1, 7, 0, 1655, 0x4284, 0xCCCD, 244, 0])
    with pytest.raises(TruncatedFrame):
        decode_example_block(bytes.fromhex("0001 0007 0000 0677 4284CCCD 00"))  # half a register
    with pytest.raises(OverlongFrame):
        decode_example_block(bytes(300))
    with pytest.raises(TruncatedFrame):
        decode_example_block(b"")


def test_words_must_be_16_bit() -> None:
    with pytest.raises(InvalidValue):
        decode(EXAMPLE_MAP, [1, 7, 0, 70000, 0, 0, 0])
    assert bytes_to_words(words_to_bytes([0, 1, 0xFFFF])) == [0, 1, 0xFFFF]


def test_the_same_sequence_is_emitted_once() -> None:
    dedup = Deduplicator()
    first = decode(EXAMPLE_MAP, [1, 7, 6, 1655, 0x4284, 0xCCCD, 244])
    assert dedup.is_new(first)
    dedup.done(first)
    assert not dedup.is_new(first)  # re-read after a lost acknowledgement
    assert dedup.is_new(decode(EXAMPLE_MAP, [1, 8, 7, 1655, 0x4284, 0xCCCD, 244]))
    assert not dedup.is_new(decode(EXAMPLE_MAP, [0, 8, 8, 0, 0, 0, 0]))


@given(st.binary(max_size=300))
def test_fuzz_arbitrary_bytes_give_events_or_a_frame_error(data: bytes) -> None:
    try:
        events = decode_example_block(data)
    except FrameError as exc:
        assert exc.reason in {"truncated", "overlong", "invalid_value"}
    else:
        assert len(events) <= 1


@given(st.lists(st.integers(0, 0xFFFF), min_size=7, max_size=7))
def test_fuzz_any_register_values_decode_or_report(words: list[int]) -> None:
    frame = decode(EXAMPLE_MAP, words)
    assert frame.ready == (words[0] != 0)
    if frame.ready:
        assert (frame.measurement is None) != (frame.error is None)
        if frame.error is not None:  # only a weight that is not a number is refused
            weight = struct.unpack(">f", struct.pack(">HH", words[4], words[5]))[0]
            assert weight != weight or weight in (float("inf"), float("-inf"))


@st.composite
def register_maps(draw: st.DrawFn) -> Any:
    """Any valid map: ready, optional sequence, 1-6 fields of any type, word order and scale."""
    address = draw(st.integers(0, 1000))
    config: dict[str, Any] = {"ready": {"address": address}, "registers": []}
    address += 1
    if draw(st.booleans()):
        config["sequence"] = {"address": address, "type": draw(st.sampled_from(["u16", "u32"]))}
        address += 2
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["u16", "i16", "u32", "i32", "f32"]))
        code, unit = draw(st.sampled_from([("8302-2", "cm"), ("8302-2", "mm"), ("29463-7", "g"),
                                           ("29463-7", "lb"), ("8310-5", "degF"), ("8480-6", "kPa")]))
        config["registers"].append({"address": address + draw(st.integers(0, 3)), "type": kind, "code": code,
                                    "unit": unit, "word_order": draw(st.sampled_from(["big", "little"])),
                                    "scale": draw(st.sampled_from([1, 0.1, 0.01, 10])),
                                    "offset": draw(st.sampled_from([0, -40.0]))})
        address = config["registers"][-1]["address"] + 2
    return parse_register_map(config)


@given(register_maps(), st.data())
def test_fuzz_any_map_and_any_words_decode_or_report(regmap: Any, data: st.DataObject) -> None:
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=regmap.count, max_size=regmap.count))
    frame = decode(regmap, words)
    if frame.measurement is not None:
        assert len(frame.measurement.observations) == len(regmap.fields)
        assert all(abs(o.value) < float("inf") for o in frame.measurement.observations)
