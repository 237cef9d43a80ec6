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
CR/LF between frames (some senders add a newline after FS CR) is ignored silently.
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
    """Incremental MLLP deframer with a per-message size limit and resynchronisation."""

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if max_size < 16:
            raise ValueError("max_size must be at least 16 bytes")
        self.max_size = max_size
        self._buf = bytearray()
        self._in_frame = False
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
                self._in_frame = True
                continue
            if self._skipped:
                out.extend(self._skip(buf))
                continue
            end = buf.find(_FS)
            vt = buf.find(_VT, 0, end if end >= 0 else len(buf))
            if vt >= 0:  # a new frame began before this one ended: the sender restarted
                out.append(Garbage(bytes(buf[:vt]), "frame interrupted by a new start byte"))
                del buf[: vt + 1]
                continue
            if end < 0:
                if len(buf) > self.max_size:
                    self._head = bytes(buf[: self.max_size])
                    self._skipped = len(buf)
                    buf.clear()
                break
            if end > self.max_size:
                out.append(Oversized(bytes(buf[: self.max_size]), end))
            else:
                out.append(bytes(buf[:end]))
            self._in_frame = False
            del buf[: end + 2 if end + 1 < len(buf) and buf[end + 1] == _CR else end + 1]
        return out

    def _skip(self, buf: bytearray) -> list[Event]:
        end = buf.find(_FS)
        vt = buf.find(_VT, 0, end if end >= 0 else len(buf))
        stop = vt if vt >= 0 else end
        if stop < 0:
            self._skipped += len(buf)
            buf.clear()
            return []
        event = Oversized(self._head, self._skipped + stop)
        self._skipped, self._head = 0, b""
        if vt >= 0:  # interrupted: keep the new frame, stay in_frame
            del buf[: vt + 1]
        else:
            self._in_frame = False
            del buf[: end + 2 if end + 1 < len(buf) and buf[end + 1] == _CR else end + 1]
        return [event]

    def close(self) -> list[Event]:
        """End of stream: report whatever was left (a partial frame or trailing bytes)."""
        out: list[Event] = []
        if self._skipped:
            out.append(Oversized(self._head, self._skipped + len(self._buf)))
        elif self._in_frame:
            out.append(Garbage(bytes(self._buf), "connection closed inside a frame"))
        elif self._buf.strip(b"\r\n"):
            out.append(Garbage(bytes(self._buf), "bytes between frames"))
        self._buf.clear()
        self._in_frame = False
        self._skipped, self._head = 0, b""
        return out

    @property
    def pending(self) -> int:
        """Bytes buffered and not yet returned (for metrics)."""
        return len(self._buf) + self._skipped
