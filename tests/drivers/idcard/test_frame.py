"""SAM frame codec: worked examples, third-party byte vectors, bounds, resync, fuzzing.

Third-party vectors (cited per test):
* [DEMO]  qiwenming/IDCardDemo, README.md ("基本指令"): find/select commands and answers,
          read-answer header ``AA AA AA 96 69 05 08 00 00 90 01 00 04 00``.
* [DLRC]  com.dlrc.idcard.IdReader (public GitHub Java source): failure answers
          ``... 00 04 00 00 80 84`` (find), ``... 81 85`` (select), ``... 41 45`` (read).
* [HSL]   HslCommunication ``SAMSerial.PackToSAMCommand`` (decompiled copy in
          ESTCore.Common): XOR from the length field to the byte before the checksum.
* [FDX3S] ListenSerial::FDX3S_CheckSecurityModuleState (public Qt source): ``... 11 FF ED``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import BadChecksum, FrameError, OverlongFrame, TruncatedFrame
from drivers.idcard import frame
from drivers.idcard.frame import Response, ResponseDecoder, command, parse

FIND_OK = bytes.fromhex("AAAAAA9669 0008 00009F 00000000 97")  # [DEMO]
SELECT_OK = bytes.fromhex("AAAAAA9669 000C 000090 0000000000000000 9C")  # [DEMO]
FIND_FAIL = bytes.fromhex("AAAAAA9669 0004 000080 84")  # [DLRC]
SELECT_FAIL = bytes.fromhex("AAAAAA9669 0004 000081 85")  # [DLRC]
READ_FAIL = bytes.fromhex("AAAAAA9669 0004 000041 45")  # [DLRC]


@pytest.mark.parametrize(("cmd", "expected"), [
    (frame.RESET_SAM, "AA AA AA 96 69 00 03 10 FF EC"),  # devices.md
    (frame.SAM_STATUS, "AA AA AA 96 69 00 03 11 FF ED"),  # [FDX3S]
    (frame.SAM_ID, "AA AA AA 96 69 00 03 12 FF EE"),  # devices.md
    (frame.FIND_CARD, "AA AA AA 96 69 00 03 20 01 22"),  # [DEMO]
    (frame.SELECT_CARD, "AA AA AA 96 69 00 03 20 02 21"),  # [DEMO]
    (frame.READ_TEXT_PHOTO, "AA AA AA 96 69 00 03 30 01 32"),  # [DEMO]
    (frame.READ_NEW_ADDRESS, "AA AA AA 96 69 00 03 30 03 30"),  # devices.md
    (frame.READ_ALL, "AA AA AA 96 69 00 03 30 10 23"),  # [DEMO]
])
def test_commands_match_published_frames(cmd: tuple[int, int], expected: str) -> None:
    assert command(cmd) == bytes.fromhex(expected)


@pytest.mark.parametrize(("raw", "sw3", "n"), [
    (FIND_OK, 0x9F, 4), (SELECT_OK, 0x90, 8), (FIND_FAIL, 0x80, 0), (SELECT_FAIL, 0x81, 0), (READ_FAIL, 0x41, 0),
])
def test_third_party_answers_parse(raw: bytes, sw3: int, n: int) -> None:
    r = parse(raw)
    assert (r.sw1, r.sw2, r.sw3, len(r.data)) == (0, 0, sw3, n)


def test_read_answer_header_from_demo_has_the_documented_length() -> None:
    # [DEMO]: AA AA AA 96 69 05 08 00 00 90 01 00 04 00 + 256 + 1024 + checksum = 1295 bytes
    head = bytes.fromhex("AAAAAA9669 0508 000090 0100 0400")
    body = head[5:] + bytes(256 + 1024)
    whole = head + bytes(256 + 1024) + bytes([frame.xor(body)])
    assert len(whole) == 1295
    assert len(parse(whole).data) == 4 + 256 + 1024


def test_bad_checksum_truncated_and_overlong_are_typed() -> None:
    with pytest.raises(BadChecksum):
        parse(FIND_OK[:-1] + b"\x00")
    with pytest.raises(TruncatedFrame):
        parse(FIND_OK[:-3])
    with pytest.raises(OverlongFrame):
        parse(FIND_OK + b"\x00")
    with pytest.raises(TruncatedFrame):
        parse(bytes.fromhex("AAAAAA9669 0002 00 02"))  # length below SW1 SW2 SW3 + checksum
    with pytest.raises(OverlongFrame):
        parse(bytes.fromhex("AAAAAA9669 FFFF") + bytes(20))
    with pytest.raises(FrameError):
        parse(b"\x00" + FIND_OK)


def test_response_repr_never_shows_data() -> None:
    assert "00" * 4 not in repr(parse(FIND_OK)).replace("00009F", "")


def test_frames_split_across_reads_byte_by_byte() -> None:
    d = ResponseDecoder()
    out = [item for b in FIND_OK + SELECT_OK for item in d.feed(bytes([b]))]
    assert [r.sw3 for r in out if isinstance(r, Response)] == [0x9F, 0x90]
    assert not [e for e in out if isinstance(e, FrameError)]


def test_resync_after_garbage_reports_the_garbage() -> None:
    d = ResponseDecoder()
    out = d.feed(b"\x01\x02\xaa\xaa" + FIND_OK + b"\xaa\x96" + SELECT_OK)
    assert [type(x).__name__ for x in out] == ["FrameError", "Response", "FrameError", "Response"]
    assert out[0].raw == b"\x01\x02\xaa\xaa"  # type: ignore[union-attr]


def test_a_cut_off_frame_does_not_swallow_the_next_one() -> None:
    d = ResponseDecoder()
    out = d.feed(SELECT_OK[:9] + FIND_OK)  # the select answer stops after 9 bytes
    out += d.feed(b"") + d.flush()
    assert [r.sw3 for r in out if isinstance(r, Response)] == [0x9F]
    assert any(isinstance(e, FrameError) for e in out)


def test_flush_reports_a_partial_frame_and_forgets_it() -> None:
    d = ResponseDecoder()
    assert d.feed(FIND_OK[:8]) == []
    errors = d.flush()
    assert errors and isinstance(errors[0], TruncatedFrame)
    assert d.pending == 0
    assert [r.sw3 for r in d.feed(FIND_OK) if isinstance(r, Response)] == [0x9F]


def test_impossible_length_resyncs_on_the_next_preamble() -> None:
    d = ResponseDecoder()
    out = d.feed(bytes.fromhex("AAAAAA9669 FFFF") + FIND_OK)
    assert isinstance(out[0], OverlongFrame)
    assert [r.sw3 for r in out if isinstance(r, Response)] == [0x9F]


def test_errors_keep_only_the_header_of_card_frames() -> None:
    body = bytes.fromhex("0508 000090 0100 0400") + "张三".encode("utf-16-le") + bytes(1276)
    bad = frame.PREAMBLE + body + bytes([frame.xor(body) ^ 1])
    with pytest.raises(BadChecksum) as exc:
        parse(bad)
    assert len(exc.value.raw) <= frame.REDACT_AFTER


@given(st.binary(max_size=3000))
def test_fuzz_arbitrary_bytes_never_raise(data: bytes) -> None:
    d = ResponseDecoder()
    for item in d.feed(data) + d.flush():
        assert isinstance(item, Response | FrameError)
    assert d.pending == 0


noise = st.binary(max_size=40).map(lambda b: b.replace(b"\xaa", b"\x55"))


@given(st.lists(st.tuples(noise, st.sampled_from([FIND_OK, SELECT_OK, FIND_FAIL, READ_FAIL])), max_size=8),
       st.integers(1, 50))
def test_fuzz_every_frame_found_in_a_noisy_stream(parts: list[tuple[bytes, bytes]], chunk: int) -> None:
    stream = b"".join(n + f for n, f in parts)
    d = ResponseDecoder()
    out = [x for i in range(0, len(stream), chunk) for x in d.feed(stream[i:i + chunk])] + d.flush()
    assert [r.raw for r in out if isinstance(r, Response)] == [f for _, f in parts]
