"""A5 5A module codec. Worked examples from devices.md ("bcm-h10" height module manual):
``A5 5A 03 03 35 3B`` (measure height) and ``A5 5A 03 03 3C 42`` (link test)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import Measurement
from drivers.errors import BadChecksum, FrameError, InvalidValue, OverlongFrame, TruncatedFrame
from drivers.stations.a5 import A5Decoder, A5Dialect, checksum, decode_frame, request
from drivers.stations.common import Signal


def frame(fn: int, data: bytes = b"", dev: int = 3) -> bytes:
    head = bytes([0xA5, 0x5A, len(data) + 3, dev, fn]) + data
    return head + bytes([(sum(head) + 1) & 0xFF])


BOTH = frame(0x37, (1625).to_bytes(2, "big") + (655).to_bytes(2, "big"))


def test_manual_request_frames() -> None:
    assert request(A5Dialect(), 0x35) == bytes.fromhex("A55A0303353B")
    assert request(A5Dialect(), 0x3C) == bytes.fromhex("A55A03033C42")
    assert checksum(bytes.fromhex("A55A030335")) == 0x3B


def test_height_and_weight_answer() -> None:
    m = decode_frame(BOTH)
    assert isinstance(m, Measurement) and m.kind == "height_weight"
    height, weight = m.observations
    assert (height.value, height.unit, height.original_value, height.original_unit) == (162.5, "cm", 1625, "mm")
    assert (weight.value, weight.unit) == (65.5, "kg")
    assert m.raw == BOTH


def test_single_value_answers_and_link_test() -> None:
    h = decode_frame(frame(0x35, (1625).to_bytes(2, "big")))
    w = decode_frame(frame(0x36, (655).to_bytes(2, "big")))
    assert isinstance(h, Measurement) and h.kind == "height" and h.observations[0].code == "8302-2"
    assert isinstance(w, Measurement) and w.kind == "weight" and w.observations[0].value == 65.5
    assert decode_frame(frame(0x3C)) == Signal("link")


def test_special_values() -> None:
    assert decode_frame(frame(0x37, bytes(4))) == Signal("empty")
    with pytest.raises(InvalidValue, match="failed"):
        decode_frame(frame(0x37, b"\xff\xff" + (655).to_bytes(2, "big")))
    heavy = decode_frame(frame(0x36, (4500).to_bytes(2, "big")))
    assert isinstance(heavy, Measurement) and heavy.observations[0].flag == "A"  # 450 kg: implausible, kept


def test_configurable_function_codes() -> None:
    dialect = A5Dialect(device_id=1, fn_both=0x40)
    m = decode_frame(frame(0x40, (1500).to_bytes(2, "big") + (500).to_bytes(2, "big"), dev=1), dialect)
    assert isinstance(m, Measurement) and m.kind == "height_weight"
    with pytest.raises(InvalidValue, match="not configured"):
        decode_frame(BOTH, dialect)


@pytest.mark.parametrize(("raw", "error"), [
    (BOTH[:-1] + bytes([BOTH[-1] ^ 1]), BadChecksum),
    (BOTH[:-2], TruncatedFrame),
    (BOTH + b"\x00", OverlongFrame),
    (bytes.fromhex("A55A02033A"), TruncatedFrame),
    (bytes.fromhex("A55A40") + bytes(64), OverlongFrame),
    (frame(0x37, b"\x00\x01"), InvalidValue),  # wrong data length for the function
    (b"\x00" + BOTH, FrameError),
])
def test_bad_frames_are_typed(raw: bytes, error: type[FrameError]) -> None:
    with pytest.raises(error):
        decode_frame(raw)


def test_stream_resync_and_hidden_frame() -> None:
    d = A5Decoder()
    out = d.feed_items(b"\x13\x37" + BOTH[:5] + BOTH + b"\xa5")
    assert isinstance(out[0], FrameError)
    assert [x.raw for x in out if isinstance(x, Measurement)] == [BOTH]
    out = d.flush()
    assert out and all(isinstance(x, FrameError) for x in out)


def test_stream_byte_by_byte_and_feed_filters_signals() -> None:
    d = A5Decoder()
    stream = BOTH + frame(0x3C) + frame(0x37, bytes(4)) + BOTH
    items = [x for b in stream for x in d.feed(bytes([b]))]
    assert [type(x).__name__ for x in items] == ["Measurement", "Measurement"]


@given(st.binary(max_size=500))
def test_fuzz_no_unexpected_exception(data: bytes) -> None:
    d = A5Decoder()
    for x in d.feed_items(data) + d.flush():
        assert isinstance(x, Measurement | FrameError | Signal)


@given(st.lists(st.tuples(st.binary(max_size=20).map(lambda b: b.replace(b"\xa5", b"\x00")),
                          st.integers(1, 3000), st.integers(1, 2000)), max_size=6))
def test_fuzz_resync_finds_every_frame(parts: list[tuple[bytes, int, int]]) -> None:
    frames = [frame(0x37, h.to_bytes(2, "big") + w.to_bytes(2, "big")) for _, h, w in parts]
    stream = b"".join(n + f for (n, _, _), f in zip(parts, frames, strict=True))
    d = A5Decoder()
    out = d.feed_items(stream) + d.flush()
    assert [x.raw for x in out if isinstance(x, Measurement)] == frames
