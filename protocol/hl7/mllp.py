"""MLLP framing (HL7 v2 Minimal Lower Layer Protocol, release 2).

A frame is ``0x0B`` (VT), the message, then ``0x1C 0x0D`` (FS CR)::

    >>> encode(b"MSH|^~\\\\&|A")
    b'\\x0bMSH|^~\\\\&|A\\x1c\\r'
    >>> d = StreamDecoder()
    >>> d.feed(b"junk\\x0bMSH|1\\x1c\\r\\x0bMS") + d.feed(b"H|2\\x1c\\r")
    [Garbage(data=b'junk', reason='bytes between frames'), b'MSH|1', b'MSH|2']

:class:`StreamDecoder` is pure: feed it whatever a socket read returned and it gives back
complete messages, plus :class:`Garbage` and :class:`Oversized` *values* for what it had
to skip, so a caller can report and keep them. It resynchronises on the next start byte.
CR/LF between frames (some senders add a newline after FS CR) is ignored silently. A frame
ends only at FS CR, so every frame gets exactly one answer (see :class:`StreamDecoder`).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.hl7.errors import FramingError

START = b"\x0b"
END = b"\x1c\x0d"
_VT = 0x0B
_FS = 0x1C
_CR = 0x0D
DEFAULT_MAX_SIZE = 1 << 20  #: 1 MiB per message unless configured otherwise


def encode(message: bytes) -> bytes:
    """Wrap one message in an MLLP frame; the message must not contain VT or FS."""
    if _VT in message or _FS in message:
        raise FramingError("an HL7 message cannot contain the MLLP frame bytes 0x0B or 0x1C")
    return START + message + END


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes that were not part of any complete frame, with why they were skipped."""

    data: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Oversized:
    """A frame longer than the limit: ``head`` holds its first ``max_size`` bytes, ``size`` its length."""

    head: bytes
    size: int


Event = bytes | Garbage | Oversized


class StreamDecoder:
    """Incremental MLLP deframer: exactly one message (or :class:`Oversized`) per ``VT ... FS CR`` frame.

    A frame ends only at the two-byte end marker FS CR: a lone FS inside a frame is part of
    its content (the message then fails to parse and gets one answer, not several). A VT
    inside a frame means the sender restarted: the bytes before it are reported as
    :class:`Garbage` (no answer) and the new frame is read. Bytes outside frames, including
    stray FS CR pairs, are :class:`Garbage`. So the number of answerable events never exceeds
    the number of FS CR markers that close an open frame, whatever the bytes and however
    they are split into reads.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if max_size < 16:
            raise ValueError("max_size must be at least 16 bytes")
        self.max_size = max_size
        self._buf = bytearray()
        self._in_frame = False
        self._scan = 0  #: bytes of the open frame already searched for VT / FS CR
        self._skipped = 0  #: > 0 while discarding the tail of an oversized frame
        self._head = b""

    def feed(self, data: bytes) -> list[Event]:
        """Consume ``data``; return the complete messages and skipped-byte reports, in order."""
        out: list[Event] = []
        buf = self._buf
        buf += data
        while buf:
            if not self._in_frame:
                start = buf.find(_VT)
                junk = buf if start < 0 else buf[:start]
                if junk.strip(b"\r\n"):
                    if start < 0 and len(buf) < self.max_size:
                        break  # keep collecting, report the whole run once
                    out.append(Garbage(bytes(junk), "bytes between frames"))
                if start < 0:
                    buf.clear()
                    break
                del buf[: start + 1]
                self._in_frame, self._scan = True, 0
                continue
            end = buf.find(END, max(0, self._scan - 1))  # the FS may be the last byte already seen
            vt = buf.find(_VT, self._scan, end if end >= 0 else len(buf))
            if vt >= 0:  # a new frame began before this one ended: the sender restarted
                if self._skipped:
                    out.append(Garbage(self._head, "oversized frame interrupted by a new start byte"))
                elif vt:  # (an empty frame cut short, VT VT, leaves nothing to keep)
                    out.append(Garbage(bytes(buf[:vt]), "frame interrupted by a new start byte"))
                self._skipped, self._head = 0, b""
                del buf[: vt + 1]
                self._scan = 0
                continue
            if end < 0:
                self._scan = len(buf)
                if self._skipped + len(buf) > self.max_size:  # keep the head, drop the rest as it comes
                    if not self._skipped:
                        self._head = bytes(buf[: self.max_size])
                    keep = 1 if buf[-1] == _FS else 0  # a FS whose CR has not arrived yet
                    self._skipped += len(buf) - keep
                    del buf[: len(buf) - keep]
                    self._scan = keep
                break
            size = self._skipped + end
            if size > self.max_size:
                out.append(Oversized(self._head or bytes(buf[: self.max_size]), size))
            else:
                out.append(bytes(buf[:end]))
            self._skipped, self._head = 0, b""
            self._in_frame, self._scan = False, 0
            del buf[: end + 2]
        return out

    def close(self) -> list[Event]:
        """End of stream: report whatever was left (a partial frame or trailing bytes); never a message."""
        out: list[Event] = []
        if self._skipped:
            out.append(Garbage(self._head, "connection closed inside an oversized frame"))
        elif self._in_frame:
            out.append(Garbage(bytes(self._buf), "connection closed inside a frame"))
        elif self._buf.strip(b"\r\n"):
            out.append(Garbage(bytes(self._buf), "bytes between frames"))
        self._buf.clear()
        self._in_frame, self._scan = False, 0
        self._skipped, self._head = 0, b""
        return out

    @property
    def pending(self) -> int:
        """Bytes buffered and not yet returned (for metrics)."""
        return len(self._buf) + self._skipped

    @property
    def in_frame(self) -> bool:
        """True while a frame has started and not ended (the listener bounds how long that may last)."""
        return self._in_frame
