"""Pure decoding of a block of Modbus registers through a :class:`RegisterMap`.

>>> from drivers.modbus.example import EXAMPLE_MAP
>>> words = [1, 7, 0, 1655, 0x4284, 0xCCCD, 244]   # ready, seq, ack, 165.5 cm, 66.4 kg, 24.4
>>> frame = decode(EXAMPLE_MAP, words)
>>> frame.sequence, [(o.code, o.value) for o in frame.measurement.observations]
(7, [('8302-2', 165.5), ('29463-7', 66.4), ('39156-5', 24.4)])

No asyncio here: the driver reads the block and hands the words over. Errors are
:class:`~drivers.errors.FrameError` subclasses carrying the block as bytes in ``raw``.
Implausible values are still emitted (the hub computes flags); only values that are not
numbers at all (NaN, infinity) are rejected.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from drivers.base import Measurement
from drivers.errors import FrameError, InvalidValue, OverlongFrame, TruncatedFrame
from drivers.modbus.regmap import Counter, Field, RegisterMap
from protocol.errors import UnitError
from protocol.units import to_canonical


@dataclass(frozen=True, slots=True)
class Frame:
    """What one poll found.

    ``measurement`` is None while the station has nothing ready, and also when the
    station flagged a measurement whose values are unusable: then ``error`` says why, and
    the driver reports it once (keyed by ``sequence``) and acknowledges it like a good one.
    """

    ready: bool
    sequence: int | None
    measurement: Measurement | None
    raw: bytes
    error: FrameError | None = None


def words_to_bytes(words: Sequence[int]) -> bytes:
    """Registers as bytes, high byte first (the Modbus wire order); rejects values outside 0..65535."""
    for i, w in enumerate(words):
        if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 0xFFFF:
            raise InvalidValue(f"register {i} holds {w!r}, not a 16-bit value")
    return struct.pack(f">{len(words)}H", *words)


def bytes_to_words(data: bytes) -> list[int]:
    """Inverse of :func:`words_to_bytes`; an odd length is a truncated register."""
    if len(data) % 2:
        raise TruncatedFrame(f"{len(data)} bytes is not a whole number of 16-bit registers", data)
    return list(struct.unpack(f">{len(data) // 2}H", data))


def _raw(words: Sequence[int], offset: int, kind: str, order: str) -> int | float:
    if kind in ("u16", "i16"):
        value = words[offset]
        return value - 0x10000 if kind == "i16" and value & 0x8000 else value
    hi, lo = words[offset], words[offset + 1]
    if order == "little":
        hi, lo = lo, hi
    packed = struct.pack(">HH", hi, lo)
    fmt = {"u32": ">I", "i32": ">i", "f32": ">f"}[kind]
    result: int | float = struct.unpack(fmt, packed)[0]
    return result


def _counter(regmap: RegisterMap, words: Sequence[int], counter: Counter) -> int:
    value = _raw(words, counter.address - regmap.start, counter.type, counter.word_order)
    return int(value)


def _value(regmap: RegisterMap, words: Sequence[int], field: Field, raw: bytes) -> float:
    value = float(_raw(words, field.address - regmap.start, field.type, field.word_order))
    if not math.isfinite(value):
        raise InvalidValue(f"register {field.address} ({field.code}) holds {value}, not a number", raw)
    if field.type == "f32":
        value = float(f"{value:.7g}")  # the digits a 32-bit float really carries: 66.4, not 66.40000152
    result = value * field.scale + field.offset
    if not math.isfinite(result):
        raise InvalidValue(f"register {field.address} ({field.code}) scales to {result}", raw)
    return round(result, 9)  # 1655 * 0.1 is 165.5, not 165.50000000000003


def decode(regmap: RegisterMap, words: Sequence[int]) -> Frame:
    """Decode the block ``regmap.start .. regmap.start + regmap.count`` read from the station.

    Raises :class:`TruncatedFrame` / :class:`OverlongFrame` when the block has the wrong
    length and :class:`InvalidValue` for words that are not 16-bit registers. A ready
    measurement whose values are not numbers comes back with ``error`` set.
    """
    raw = words_to_bytes(words[: regmap.count + 1])
    if len(words) < regmap.count:
        raise TruncatedFrame(f"{len(words)} registers, the map needs {regmap.count} from {regmap.start}", raw)
    if len(words) > regmap.count:
        raise OverlongFrame(f"{len(words)} registers, the map needs only {regmap.count}", raw)
    ready = _counter(regmap, words, regmap.ready) != 0
    sequence = None if regmap.sequence is None else _counter(regmap, words, regmap.sequence)
    if not ready:
        return Frame(False, sequence, None, raw)
    observations = []
    try:
        for field in regmap.fields:
            value = _value(regmap, words, field, raw)
            try:
                observations.append(to_canonical(field.code, value, field.reported_unit))
            except UnitError as exc:  # parse_register_map checked this
                raise InvalidValue(str(exc), raw) from exc
    except InvalidValue as exc:
        return Frame(True, sequence, None, raw, exc)
    measurement = Measurement(kind=regmap.kind, observations=tuple(observations), raw=raw)
    return Frame(True, sequence, measurement, raw)


class Deduplicator:
    """Remembers the last sequence value emitted so a re-read measurement is not emitted twice.

    The driver keeps one per device across reconnects: if the hub stored a measurement but
    the acknowledgement write was lost with the connection, the station still shows the
    same sequence value after the reconnect and :meth:`is_new` says False.
    """

    def __init__(self) -> None:
        self.last: int | None = None

    def is_new(self, frame: Frame) -> bool:
        """True when ``frame`` is ready and, with a sequence register, carries a new value."""
        if not frame.ready:
            return False
        return frame.sequence is None or frame.sequence != self.last

    def done(self, frame: Frame) -> None:
        """Record that ``frame`` was delivered (or reported as bad)."""
        if frame.sequence is not None:
            self.last = frame.sequence
