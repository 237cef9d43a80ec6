"""Hand-carried export files (docs/protocol.md §7)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.export import ExportFormatError, read_export, write_export


@given(st.lists(st.binary(max_size=300), max_size=8))
def test_round_trip(batches: list[bytes]) -> None:
    assert list(read_export(write_export(batches))) == batches


@pytest.mark.parametrize(("data", "match"), [
    (b"MCHB\x01\x00\x00\x00", "bad magic"),
    (b"MCHX\x02\x00\x00\x00", "version 2"),
    (write_export([b"abc"])[:-1], "incomplete"),
    (write_export([b"abc"]) + b"\x00\x00", "inside a length field"),
    (b"MCHX\x01\x00\x00\x00\xff\xff\xff\xff", "more than the limit"),
])
def test_damage_is_reported_with_the_offset(data: bytes, match: str) -> None:
    with pytest.raises(ExportFormatError, match=match):
        list(read_export(data))
