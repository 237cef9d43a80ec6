"""The ``A5 5A`` binary height/weight module protocol (pure).

Frame (devices.md, "bcm-h10" height module manual)::

    A5 5A | LEN | DEV | FN | DATA... | CS

``LEN`` counts the bytes after itself (DEV, FN, DATA, CS); ``CS = (sum of all preceding
bytes + 1) & 0xFF``. Values are big-endian: height in mm, weight in units of 100 g.
Documented frames: ``A5 5A 03 03 35 3B`` asks for a height measurement and
``A5 5A 03 03 3C 42`` is a link test.

Not confirmed by any public source, chosen here and configurable (:class:`A5Dialect`):

* function codes: ``0x35`` height, ``0x36`` weight, ``0x37`` height + weight, ``0x3C``
  link test; the module answers with the same function code;
* answers: ``0x35`` -> height u16; ``0x36`` -> weight u16; ``0x37`` -> height u16,
  weight u16; ``0x3C`` -> no data;
* push mode: the module sends a ``0x37`` answer by itself when a measurement completes;
* special values: a field of ``0xFFFF`` means "measurement failed" (rejected with
  :class:`~drivers.errors.InvalidValue`); all fields ``0x0000`` means "platform empty"
  (a :class:`~drivers.stations.common.Signal`, not a measurement).

>>> request(A5Dialect(device_id=3), A5Dialect().fn_height).hex(" ")
'a5 5a 03 03 35 3b'
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from drivers.base import Event
from drivers.errors import BadChecksum, FrameError, InvalidValue, OverlongFrame, TruncatedFrame
from drivers.framing import sync_point
from drivers.stations.common import Item, Signal, measurement, observation
from protocol import codes
from protocol.model import ReadingKind

PREAMBLE = b"\xa5\x5a"
MIN_LEN = 3  # DEV FN CS
MAX_LEN = 16
FAILED = 0xFFFF


def _byte(key: str, example: int) -> Meta:
    return Meta(ge=0, le=255, description=f'write {key} = 0x{example:02X} (a byte 0..255; the text "0x{example:02X}" '
                                          "works too)")


class A5Dialect(msgspec.Struct, frozen=True, kw_only=True):
    """Function codes and device id of one module: the configuration keys of the same names,
    each a byte (decoded by :mod:`drivers.stations.dialects`, which also takes ``"0x37"`` texts)."""

    device_id: Annotated[int, _byte("device_id", 3)] = 3
    fn_height: Annotated[int, _byte("fn_height", 0x35)] = 0x35
    fn_weight: Annotated[int, _byte("fn_weight", 0x36)] = 0x36
    fn_both: Annotated[int, _byte("fn_both", 0x37)] = 0x37
    fn_link: Annotated[int, _byte("fn_link", 0x3C)] = 0x3C


#: the module as shipped (no keys configured)
DEFAULT = A5Dialect()


def checksum(data: bytes) -> int:
    """``(sum of bytes + 1) & 0xFF``."""
    return (sum(data) + 1) & 0xFF


def request(dialect: A5Dialect, function: int, data: bytes = b"") -> bytes:
    """A complete host request frame."""
    body = bytes([len(data) + 3, dialect.device_id, function]) + data
    head = PREAMBLE + body
    return head + bytes([checksum(head)])


def _u16(data: bytes, i: int) -> int:
    return int.from_bytes(data[i:i + 2], "big")


def decode_frame(frame: bytes, dialect: A5Dialect = DEFAULT) -> Item | None:
    """Decode exactly one frame: a Measurement, a Signal, or None for a frame to ignore."""
    if not frame.startswith(PREAMBLE):
        raise FrameError("A5 frame does not start with A5 5A", frame[:16])
    if len(frame) < 3 + MIN_LEN:
        raise TruncatedFrame(f"A5 frame of {len(frame)} bytes is too short", frame)
    length = frame[2]
    if length < MIN_LEN:
        raise TruncatedFrame(f"A5 length {length} below the minimum {MIN_LEN}", frame)
    if length > MAX_LEN:
        raise OverlongFrame(f"A5 length {length} above the maximum {MAX_LEN}", frame[:3])
    if len(frame) != 3 + length:
        cls = TruncatedFrame if len(frame) < 3 + length else OverlongFrame
        raise cls(f"A5 frame promises {length} bytes after the length, has {len(frame) - 3}", frame)
    if checksum(frame[:-1]) != frame[-1]:
        raise BadChecksum("A5 checksum does not match", frame)
    fn, data = frame[4], frame[5:-1]
    sizes = {dialect.fn_height: 2, dialect.fn_weight: 2, dialect.fn_both: 4, dialect.fn_link: 0}
    if fn not in sizes:
        raise InvalidValue(f"A5 function code 0x{fn:02X} is not configured", frame)
    if len(data) != sizes[fn]:
        raise InvalidValue(f"A5 function 0x{fn:02X} carries {len(data)} data bytes, expected {sizes[fn]}", frame)
    if fn == dialect.fn_link:
        return Signal("link")
    values = [_u16(data, i) for i in range(0, len(data), 2)]
    if all(v == 0 for v in values):
        return Signal("empty")
    if FAILED in values:
        raise InvalidValue("A5 station reports a failed measurement (0xFFFF)", frame)
    obs = []
    if fn in (dialect.fn_height, dialect.fn_both):
        obs.append(observation(codes.HEIGHT, float(values[0]), "mm"))
    if fn in (dialect.fn_weight, dialect.fn_both):
        obs.append(observation(codes.WEIGHT, values[-1] / 10.0, "kg"))
    kind: ReadingKind = "height_weight" if fn == dialect.fn_both else "height" if fn == dialect.fn_height else "weight"
    return measurement(kind, obs, frame)


class A5Decoder:
    """Stream decoder with resync on ``A5 5A``; bad frames are rescanned after their preamble."""

    def __init__(self, dialect: A5Dialect = DEFAULT) -> None:
        self.dialect = dialect
        self._buf = bytearray()

    def feed_items(self, data: bytes) -> list[Item]:
        """Everything decoded so far, signals included."""
        self._buf += data
        out: list[Item] = []
        while True:
            sync = sync_point(self._buf, PREAMBLE)
            if sync > 0:
                out.append(FrameError(f"{sync} bytes of garbage before A5 5A", bytes(self._buf[:sync])))
                del self._buf[:sync]
            if len(self._buf) < 3:
                return out
            length = self._buf[2]
            if length < MIN_LEN or length > MAX_LEN:
                out.append(self._bad(TruncatedFrame if length < MIN_LEN else OverlongFrame,
                                     f"A5 length {length} outside {MIN_LEN}..{MAX_LEN}"))
                continue
            if len(self._buf) < 3 + length:
                return out
            frame = bytes(self._buf[:3 + length])
            try:
                item = decode_frame(frame, self.dialect)
            except BadChecksum as exc:
                del self._buf[:2]  # may hide a real frame: rescan after this preamble
                out.append(exc)
                continue
            except FrameError as exc:
                del self._buf[:3 + length]
                out.append(exc)
                continue
            del self._buf[:3 + length]
            if item is not None:
                out.append(item)

    def _bad(self, cls: type[FrameError], message: str) -> FrameError:
        raw = bytes(self._buf[:3])
        del self._buf[:2]
        return cls(message, raw)

    def feed(self, data: bytes) -> list[Event | FrameError]:
        """Events and errors only."""
        return [i for i in self.feed_items(data) if not isinstance(i, Signal)]

    def flush(self) -> list[Item]:
        """Report a partial frame and rescan what follows its preamble."""
        out: list[Item] = []
        while self._buf:
            partial = bytes(self._buf)
            cut = sync_point(self._buf, PREAMBLE, 1)
            del self._buf[:max(cut, 1) if cut < len(partial) else len(partial)]
            out.append(TruncatedFrame(f"A5 frame cut off after {len(partial) - len(self._buf)} bytes",
                                      partial[:16]))
            out.extend(self.feed_items(b""))
        return out

    def reset(self) -> None:
        """Forget buffered bytes."""
        self._buf.clear()
