"""SAM frames of the resident ID-card reader (pure, no I/O).

Layout (devices.md; HslCommunication SAMSerial, qiwenming/IDCardDemo):

    AA AA AA 96 69 | LEN (u16 BE) | payload | XOR

``LEN`` counts the bytes after the length field, checksum included; the checksum is
the XOR of every byte from the length field up to the byte before it. The host sends
``CMD PARA [data]``; the reader answers ``SW1 SW2 SW3 [data]``.

>>> command(FIND_CARD).hex(" ")
'aa aa aa 96 69 00 03 20 01 22'

:class:`ResponseDecoder` turns a byte stream into :class:`Response` values and frame
errors, resynchronising on the preamble after garbage, a bad checksum or an impossible
length. Frames carrying card data are redacted in errors (only the header is kept), so
an ID number never reaches an error log.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import BadChecksum, FrameError, OverlongFrame, TruncatedFrame
from drivers.framing import sync_point, xor

__all__ = ["PREAMBLE", "Response", "ResponseDecoder", "command", "parse", "sync_point", "xor"]

PREAMBLE = b"\xaa\xaa\xaa\x96\x69"
HEADER_LEN = len(PREAMBLE) + 2
#: shortest payload: SW1 SW2 SW3 + checksum
MIN_LEN = 4
#: longest response: SW(3) + 3 lengths(6) + text 256 + photo 1024 + fingerprint 1024 + checksum
MAX_LEN = 3 + 6 + 256 + 1024 + 1024 + 1
#: bytes of a bad frame kept for inspection (the header; never card data)
REDACT_AFTER = HEADER_LEN + 3

RESET_SAM = (0x10, 0xFF)
SAM_STATUS = (0x11, 0xFF)
SAM_ID = (0x12, 0xFF)
FIND_CARD = (0x20, 0x01)
SELECT_CARD = (0x20, 0x02)
READ_TEXT_PHOTO = (0x30, 0x01)
READ_NEW_ADDRESS = (0x30, 0x03)
READ_ALL = (0x30, 0x10)  #: text + photo + fingerprint


def command(cmd: tuple[int, int], data: bytes = b"") -> bytes:
    """A complete host-to-reader frame for ``(CMD, PARA)`` and optional data."""
    body = bytes(cmd) + data
    length = (len(body) + 1).to_bytes(2, "big")
    return PREAMBLE + length + body + bytes([xor(length + body)])


@dataclass(frozen=True, slots=True)
class Response:
    """One reader answer: status words and the data after them (checksum verified)."""

    sw1: int
    sw2: int
    sw3: int
    data: bytes
    raw: bytes

    def __repr__(self) -> str:  # never print card data
        return f"Response(sw={self.sw1:02X}{self.sw2:02X}{self.sw3:02X}, {len(self.data)} data bytes)"


def _redact(frame: bytes) -> bytes:
    return frame[:REDACT_AFTER]


def parse(frame: bytes) -> Response:
    """Parse exactly one complete response frame; raise a FrameError saying what is wrong."""
    if not frame.startswith(PREAMBLE):
        raise FrameError("SAM frame does not start with AA AA AA 96 69", _redact(frame))
    if len(frame) < HEADER_LEN + MIN_LEN:
        raise TruncatedFrame(f"SAM frame of {len(frame)} bytes is shorter than the minimum", frame)
    length = int.from_bytes(frame[5:7], "big")
    if length < MIN_LEN:
        raise TruncatedFrame(f"SAM length field {length} is below the minimum {MIN_LEN}", frame[:HEADER_LEN])
    if length > MAX_LEN:
        raise OverlongFrame(f"SAM length field {length} exceeds the maximum {MAX_LEN}", frame[:HEADER_LEN])
    if len(frame) < HEADER_LEN + length:
        raise TruncatedFrame(f"SAM frame promises {length} bytes, has {len(frame) - HEADER_LEN}", _redact(frame))
    if len(frame) > HEADER_LEN + length:
        raise OverlongFrame(f"SAM frame has {len(frame) - HEADER_LEN - length} bytes after its checksum",
                            _redact(frame))
    if xor(frame[5:-1]) != frame[-1]:
        raise BadChecksum("SAM frame checksum (XOR) does not match", _redact(frame))
    return Response(frame[7], frame[8], frame[9], frame[10:-1], frame)


class ResponseDecoder:
    """Incremental decoder of reader responses with resynchronisation on the preamble.

    ``feed`` returns every complete :class:`Response` or :class:`FrameError` in order.
    Skipped garbage is reported too (``reason = "bad_frame"``), never dropped silently.
    After a bad frame the decoder rescans from the byte after its preamble, so a good
    frame hidden behind a cut-off one is still found. Call :meth:`flush` when the line
    has been idle: a partial frame is then reported as truncated and rescanned.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Response | FrameError]:
        """Consume ``data``."""
        self._buf += data
        out: list[Response | FrameError] = []
        while (item := self._next()) is not None:
            out.append(item)
        return out

    def flush(self) -> list[Response | FrameError]:
        """Give up on a partial frame: report it and rescan the bytes after its preamble."""
        out: list[Response | FrameError] = []
        while self._buf:
            if self._buf.startswith(PREAMBLE):
                dropped = self._drop(1)
                out.append(TruncatedFrame(f"SAM frame cut off after {len(dropped)} bytes", _redact(dropped)))
            else:
                dropped = self._drop(0)
                out.append(FrameError(f"{len(dropped)} bytes of garbage (incomplete preamble)", dropped))
            out.extend(self.feed(b""))
        return out

    def reset(self) -> None:
        """Forget buffered bytes (after the driver re-opened the port)."""
        self._buf.clear()

    @property
    def pending(self) -> int:
        """Bytes buffered but not yet decoded."""
        return len(self._buf)

    def _drop(self, start: int) -> bytes:
        """Remove the bytes before the next possible frame start at or after ``start`` (at least one)."""
        cut = sync_point(self._buf, PREAMBLE, start)
        if cut == 0:  # only an incomplete preamble is left and the caller gave up on it
            cut = len(self._buf)
        dropped = bytes(self._buf[:cut])
        del self._buf[:cut]
        return dropped

    def _next(self) -> Response | FrameError | None:
        sync = sync_point(self._buf, PREAMBLE)
        if sync > 0:
            garbage = bytes(self._buf[:sync])
            del self._buf[:sync]
            return FrameError(f"{len(garbage)} bytes of garbage before the SAM preamble", garbage)
        if len(self._buf) < HEADER_LEN:
            return None
        length = int.from_bytes(self._buf[5:7], "big")
        if length < MIN_LEN or length > MAX_LEN:
            header = bytes(self._buf[:HEADER_LEN])
            self._drop(1)
            cls = TruncatedFrame if length < MIN_LEN else OverlongFrame
            return cls(f"SAM length field {length} outside {MIN_LEN}..{MAX_LEN}", header)
        end = HEADER_LEN + length
        if len(self._buf) < end:
            return None
        frame = bytes(self._buf[:end])
        try:
            response = parse(frame)
        except FrameError as exc:
            self._drop(1)  # the frame may hide a real one: rescan after this preamble
            return exc
        del self._buf[:end]
        return response
