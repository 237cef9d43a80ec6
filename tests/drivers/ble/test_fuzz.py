"""Arbitrary bytes into every BLE codec: a Measurement or a FrameError, nothing else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.base import Measurement
from drivers.errors import FrameError
from drivers.registry import codecs

BLE = sorted(name for name in codecs() if name.startswith("ble-"))


def test_every_ble_codec_is_registered() -> None:
    assert BLE == ["ble-body-composition", "ble-bp", "ble-icp", "ble-thermometer", "ble-weight"]


@pytest.mark.parametrize("name", BLE)
@given(data=st.binary(max_size=40))
def test_arbitrary_bytes(name: str, data: bytes) -> None:
    try:
        events = codecs()[name].decode(data)
    except FrameError as exc:
        assert exc.raw == data
        assert str(exc)
    else:
        assert len(events) == 1 and isinstance(events[0], Measurement) and events[0].raw == data


@pytest.mark.parametrize("name", BLE)
@given(data=st.data())
def test_mutated_examples(name: str, data: st.DataObject) -> None:
    """Flip bytes of a valid frame: closer to real corruption than random bytes."""
    info = codecs()[name]
    frame = bytearray(data.draw(st.sampled_from(info.examples)))
    for _ in range(data.draw(st.integers(1, 4))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(FrameError):
        info.decode(bytes(frame))


@pytest.mark.parametrize("name", BLE)
def test_examples_decode(name: str) -> None:
    info = codecs()[name]
    assert info.examples
    for frame in info.examples:
        (event,) = info.decode(frame)
        assert isinstance(event, Measurement) and event.observations
