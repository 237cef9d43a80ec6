"""The compact batch body: never anything but BadBody/BodyTooLarge on bad input."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from protocol.batch import decode_records, encode_records
from protocol.errors import BadBody, BodyTooLarge, EnvelopeError
from tests.protocol.strategies import record_streams


@given(record_streams())
def test_encode_decode_round_trip(records: list) -> None:
    body = encode_records(records)
    assert decode_records(body, hub_id="hub-1", epoch=7, first_seq=records[0].seq) == records


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_typed_errors_only(data: bytes) -> None:
    with contextlib.suppress(EnvelopeError):
        decode_records(data, hub_id="h", epoch=1, first_seq=1)


@given(st.lists(st.lists(st.integers(-(2**63), 2**63) | st.text(max_size=5) | st.none(), max_size=10), max_size=5))
def test_well_compressed_garbage_is_bad_body(garbage: list) -> None:
    body = zstandard.ZstdCompressor().compress(msgspec.msgpack.encode(garbage))
    with contextlib.suppress(BadBody):
        decode_records(body, hub_id="h", epoch=1, first_seq=1)


@given(st.binary(max_size=200))
def test_compressed_arbitrary_bytes_are_bad_body(payload: bytes) -> None:
    body = zstandard.ZstdCompressor().compress(payload)
    with contextlib.suppress(BadBody):
        decode_records(body, hub_id="h", epoch=1, first_seq=1)


def test_invalid_utf8_inside_a_record_is_bad_body() -> None:
    body = zstandard.ZstdCompressor().compress(b"\x91\x9a\x00\xa2\xda\x01")  # [[0, <bad UTF-8>]]
    with pytest.raises(BadBody):
        decode_records(body, hub_id="h", epoch=1, first_seq=1)


def test_decompression_bomb_is_refused_before_inflating() -> None:
    bomb = zstandard.ZstdCompressor().compress(b"\x00" * (8 << 20))
    with pytest.raises(BodyTooLarge):
        decode_records(bomb, hub_id="h", epoch=1, first_seq=1, max_size=1 << 20)


def test_frame_without_declared_size_is_refused() -> None:
    body = zstandard.ZstdCompressor(write_content_size=False).compress(msgspec.msgpack.encode([]))
    with pytest.raises(BadBody, match="size"):
        decode_records(body, hub_id="h", epoch=1, first_seq=1)


@given(record_streams())
def test_columns_hold_the_same_records(records: list) -> None:
    from protocol.batch import decode_columns
    from protocol.model import Reading

    cols = decode_columns(encode_records(records), hub_id="hub-1", epoch=7, first_seq=records[0].seq)
    assert cols.count == len(records)
    assert cols.records() == records
    assert cols.seq == [r.seq for r in records if isinstance(r, Reading)]
    assert cols.uids() == [r.uid for r in records if isinstance(r, Reading)]
    assert cols.uid_ints() == [int(r.uid.replace("-", ""), 16) for r in records if isinstance(r, Reading)]
    assert [r.seq for r in cols.others] == [r.seq for r in records if not isinstance(r, Reading)]


def test_batches_sealed_in_several_threads_at_once_are_each_right() -> None:
    """The hub seals up to ``batches_in_flight`` batches at the same time, each in a worker thread. A
    zstandard compressor shared between them failed ("cannot compress: Src size is incorrect") and stopped
    the hub's sync at load; every thread's bodies must decode to exactly its records."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from protocol.ids import reading_uid
    from protocol.model import Observation, Reading

    def batch(n: int) -> list[Reading]:
        return [Reading(hub_id="H1", epoch=1, seq=n * 1000 + i, at=1_700_000_000_000 + i, device_id=f"d{n}",
                        station_id="s1", kind="blood_pressure", raw=os.urandom(200 + 37 * n),
                        uid=reading_uid("H1", 1, n * 1000 + i, 1_700_000_000_000 + i),
                        observations=(Observation(code="8480-6", value=120.0 + i, unit="mm[Hg]"),))
                for i in range(50 + n)]

    batches = [batch(n) for n in range(8)]

    def seal_many(n: int) -> bool:
        return all(decode_records(encode_records(batches[n]), hub_id="H1", epoch=1, first_seq=n * 1000) == batches[n]
                   for _ in range(200))

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(seal_many, range(8)))
