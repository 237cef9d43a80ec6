"""MLLP framing: split and merged reads, garbage, size limit, resynchronisation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.hl7 import mllp
from protocol.hl7.errors import FramingError, Hl7Error
from protocol.hl7.mllp import Garbage, Oversized, StreamDecoder

MSG = b"MSH|^~\\&|LIS|H|||20260101||ORU^R01|1|P|2.5.1\rPID|||1^^^^MR\r"


def feed_all(decoder: StreamDecoder, chunks: list[bytes]) -> list[mllp.Event]:
    out: list[mllp.Event] = []
    for c in chunks:
        out += decoder.feed(c)
    return out + decoder.close()


def test_encode_wraps_in_vt_and_fs_cr() -> None:
    assert mllp.encode(b"MSH|x") == b"\x0bMSH|x\x1c\r"


def test_encode_refuses_frame_bytes_inside_a_message() -> None:
    with pytest.raises(FramingError):
        mllp.encode(b"MSH\x1c")
    assert issubclass(FramingError, Hl7Error)


def test_a_frame_split_at_every_byte_boundary_is_reassembled() -> None:
    wire = mllp.encode(MSG)
    for cut in range(1, len(wire)):
        assert feed_all(StreamDecoder(), [wire[:cut], wire[cut:]]) == [MSG]


def test_several_frames_in_one_read_come_out_in_order() -> None:
    msgs = [MSG.replace(b"|1|", f"|{i}|".encode()) for i in range(5)]
    assert StreamDecoder().feed(b"".join(mllp.encode(m) for m in msgs)) == msgs


def test_garbage_between_frames_is_reported_as_a_value_and_skipped() -> None:
    events = feed_all(StreamDecoder(), [b"hello" + mllp.encode(MSG) + b"\r\n" + b"xx" + mllp.encode(MSG)])
    assert events == [Garbage(b"hello", "bytes between frames"), MSG, Garbage(b"\r\nxx", "bytes between frames"), MSG]


def test_newlines_after_a_frame_are_not_garbage() -> None:
    assert feed_all(StreamDecoder(), [mllp.encode(MSG) + b"\r\n\n", mllp.encode(MSG)]) == [MSG, MSG]


def test_only_fs_cr_ends_a_frame_a_lone_fs_is_content() -> None:
    """Issue 16 finding 5: a lone 0x1C used to end the frame early (one frame, several answers)."""
    assert StreamDecoder().feed(b"\x0bA\x1cB\x1c\r") == [b"A\x1cB"]
    # a sender that ends with FS alone and restarts: the restart wins, the cut frame is garbage
    assert StreamDecoder().feed(b"\x0bA\x1c\x0bB\x1c\r") == [
        Garbage(b"A\x1c", "frame interrupted by a new start byte"), b"B"]


def test_the_frame_that_got_four_answers_gets_one() -> None:
    """The probe's frame: garbage with stray FS bytes inside one VT ... FS CR."""
    wire = b"\x0b\x00\xffjunk\x1cmore\x1c\x1c\rnot\x1c-hl7\x1c\r\x0bMSH|ok\x1c\r"
    events = StreamDecoder().feed(wire)
    answered = [e for e in events if not isinstance(e, Garbage)]
    assert answered == [b"\x00\xffjunk\x1cmore\x1c", b"MSH|ok"]  # "not..-hl7 FS CR" is outside a frame
    assert [e.reason for e in events if isinstance(e, Garbage)] == ["bytes between frames"]


def test_fs_and_cr_split_across_reads() -> None:
    d = StreamDecoder()
    assert d.feed(b"\x0bMSH|a\x1c") == []
    assert d.feed(b"\r") == [b"MSH|a"]


def test_oversized_frame_with_a_lone_fs_at_a_read_boundary_still_ends_once() -> None:
    d = StreamDecoder(max_size=16)
    events = feed_all(d, [b"\x0b" + b"x" * 40 + b"\x1c", b"y" * 10 + b"\x1c", b"\r\x0bMSH|ok\x1c\r"])
    assert events == [Oversized(b"x" * 16, 51), b"MSH|ok"]


def test_close_inside_an_oversized_frame_is_not_answered() -> None:
    d = StreamDecoder(max_size=16)
    assert d.feed(b"\x0b" + b"x" * 40) == []
    assert d.close() == [Garbage(b"x" * 16, "connection closed inside an oversized frame")]


def test_a_frame_interrupted_by_a_new_start_byte_is_reported_and_the_new_one_kept() -> None:
    events = StreamDecoder().feed(b"\x0bMSH|half" + mllp.encode(MSG))
    assert events == [Garbage(b"MSH|half", "frame interrupted by a new start byte"), MSG]


def test_oversized_frame_reported_with_its_head_and_the_stream_recovers() -> None:
    big = b"MSH|" + b"x" * 200
    d = StreamDecoder(max_size=64)
    events = feed_all(d, [mllp.encode(big)[:100], mllp.encode(big)[100:] + mllp.encode(b"MSH|ok")])
    assert events == [Oversized(big[:64], len(big)), b"MSH|ok"]


def test_oversized_frame_in_one_read() -> None:
    big = b"MSH|" + b"y" * 100
    assert StreamDecoder(max_size=32).feed(mllp.encode(big)) == [Oversized(big[:32], len(big))]


def test_close_inside_a_frame_keeps_the_partial_bytes() -> None:
    d = StreamDecoder()
    assert d.feed(b"\x0bMSH|partial") == []
    assert d.pending == len(b"MSH|partial")
    assert d.close() == [Garbage(b"MSH|partial", "connection closed inside a frame")]


def test_endless_garbage_is_reported_in_bounded_pieces() -> None:
    d = StreamDecoder(max_size=64)
    events = d.feed(b"z" * 100)
    assert events == [Garbage(b"z" * 100, "bytes between frames")]
    assert d.pending == 0


_frames = st.lists(st.binary(max_size=60).map(lambda b: b"MSH|" + b.replace(b"\x0b", b"").replace(b"\x1c", b"")),
                   min_size=1, max_size=6)


@given(_frames, st.data())
def test_any_chunking_yields_the_same_frames(frames: list[bytes], data: st.DataObject) -> None:
    wire = b"".join(mllp.encode(f) for f in frames)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert feed_all(StreamDecoder(), chunks) == frames


@given(st.lists(st.binary(max_size=80), max_size=8))
def test_arbitrary_bytes_never_raise_and_nothing_is_lost(chunks: list[bytes]) -> None:
    """Every input byte except VT/FS and CR/LF comes back in some event (stray FS stays in garbage)."""
    d = StreamDecoder(max_size=1000)
    events = feed_all(d, chunks)
    kept = sum(len(e) if isinstance(e, bytes) else len(e.data) if isinstance(e, Garbage) else e.size
               for e in events)
    total = sum(len(c) for c in chunks)
    assert kept <= total
    payload = b"".join(chunks).replace(b"\x0b", b"").replace(b"\x1c", b"").replace(b"\r", b"").replace(b"\n", b"")
    seen = b"".join(e if isinstance(e, bytes) else e.data if isinstance(e, Garbage) else e.head for e in events)
    assert seen.replace(b"\x1c", b"").replace(b"\r", b"").replace(b"\n", b"") == payload


def _answered(events: list[mllp.Event]) -> list[mllp.Event]:
    return [e for e in events if not isinstance(e, Garbage)]


_noise = st.binary(max_size=40)


@given(st.lists(st.binary(max_size=60), max_size=8), st.data())
def test_never_more_answers_than_frame_ends_whatever_the_bytes_or_reads(chunks: list[bytes],
                                                                          data: st.DataObject) -> None:
    """Finding 5: one answer per VT ... FS CR at most, and the same answers however the bytes are split."""
    wire = b"".join(chunks)
    events = feed_all(StreamDecoder(max_size=64), chunks)
    assert len(_answered(events)) <= wire.count(b"\x1c\r")
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    again = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert _answered(feed_all(StreamDecoder(max_size=64), again)) == _answered(events)


@given(st.lists(st.tuples(_noise.map(lambda b: b.replace(b"\x0b", b"")), st.binary(max_size=50)), min_size=1,
                max_size=6), st.data())
def test_frames_between_any_garbage_stay_in_step(pairs: list[tuple[bytes, bytes]], data: st.DataObject) -> None:
    """Garbage (with stray FS, FS CR, CR/LF) between frames never adds an answer or loses a frame."""
    frames = [b"MSH|" + body.replace(b"\x0b", b"").replace(b"\x1c\r", b"") for _, body in pairs]
    frames = [f[:-1] if f.endswith(b"\x1c") else f for f in frames]
    wire = b"".join(noise + b"\x0b" + f + b"\x1c\r" for (noise, _), f in zip(pairs, frames, strict=True))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    chunks = [wire[a:b] for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True)]
    assert _answered(feed_all(StreamDecoder(max_size=4096), chunks)) == frames


def test_start_bytes_alone_produce_nothing_to_store() -> None:
    assert StreamDecoder().feed(b"\x0b" * 1000) == []
