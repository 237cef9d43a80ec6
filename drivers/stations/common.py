"""Pieces every station dialect shares: observations, signals and a line splitter (pure).

A station decoder's :meth:`feed_items` returns measurements, frame errors and
:class:`Signal` values (the platform is empty, the prompt came back, the link test
answered). Signals matter to the driver in poll mode; :meth:`feed` keeps only events and
errors, so every decoder also satisfies :class:`drivers.base.StreamDecoder`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from drivers.base import Event, Measurement
from drivers.errors import FrameError, InvalidValue, OverlongFrame, TruncatedFrame
from protocol.errors import UnitError
from protocol.flags import plausible
from protocol.model import Observation, ReadingKind
from protocol.units import to_canonical


@dataclass(frozen=True, slots=True)
class Signal:
    """A non-measurement message: ``kind`` is ``"empty"`` (nobody on the platform), ``"prompt"`` or ``"link"``."""

    kind: str


Item = Event | FrameError | Signal


def observation(loinc: str, value: float, unit: str) -> Observation:
    """Observation in canonical units, original kept; implausible values flagged ``A``.

    NaN and infinities are rejected with :class:`InvalidValue`.
    """
    if not math.isfinite(value):
        raise InvalidValue(f"value for {loinc} is not a finite number")
    try:
        obs = to_canonical(loinc, value, unit)
    except UnitError as exc:
        raise InvalidValue(str(exc)) from None
    if not plausible(obs):
        obs = Observation(code=obs.code, value=obs.value, unit=obs.unit, original_value=obs.original_value,
                          original_unit=obs.original_unit, flag="A")
    return obs


def number(text: str, field: str) -> float:
    """Parse a decimal field; InvalidValue for NaN/empty/garbage."""
    t = text.strip()
    try:
        value = float(t)
    except ValueError:
        raise InvalidValue(f"field {field!r} is not a number: {t[:16]!r}") from None
    if not math.isfinite(value) or not t.replace(".", "", 1).lstrip("+-").isdigit():
        raise InvalidValue(f"field {field!r} is not a plain decimal number")
    return value


class LineSplitter:
    """Split a byte stream into lines ending in CR, LF or CR LF; bound the line length.

    A line longer than ``max_len`` is reported as :class:`OverlongFrame` and skipped up to
    the next terminator. :meth:`flush` reports a partial line (the device stopped
    mid-line) as :class:`TruncatedFrame`.
    """

    def __init__(self, max_len: int = 256, standalone: bytes = b"") -> None:
        self.max_len = max_len
        self.standalone = standalone  #: bytes that form a line by themselves at a line start (a prompt)
        self._buf = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        """Complete lines (without terminator; empty lines dropped) and overlong-line errors."""
        out: list[bytes | FrameError] = []
        for b in data:
            if b in (0x0D, 0x0A):
                if self._skipping:
                    self._skipping = False
                elif self._buf:
                    out.append(bytes(self._buf))
                self._buf.clear()
                continue
            if self._skipping:
                continue
            if not self._buf and b in self.standalone:
                out.append(bytes([b]))
                continue
            self._buf.append(b)
            if len(self._buf) > self.max_len:
                out.append(OverlongFrame(f"line longer than {self.max_len} bytes", bytes(self._buf[:64])))
                self._buf.clear()
                self._skipping = True
        return out

    def flush(self) -> list[bytes | FrameError]:
        """Report and forget a partial line."""
        self._skipping = False
        if not self._buf:
            return []
        partial = bytes(self._buf)
        self._buf.clear()
        return [TruncatedFrame(f"line cut off after {len(partial)} bytes (no CR/LF)", partial)]

    def reset(self) -> None:
        """Forget everything buffered."""
        self._buf.clear()
        self._skipping = False


def measurement(kind: ReadingKind, observations: list[Observation], raw: bytes,
                device_time: str | None = None, status: tuple[str, ...] = ()) -> Measurement:
    """Build a Measurement from a list of observations."""
    return Measurement(kind=kind, observations=tuple(observations), raw=raw, device_time=device_time,
                       status=status)


class LineDecoder:
    """Stream decoder for a line dialect: ``parse(line)`` gives an item or None (ignore)."""

    def __init__(self, parse: Callable[[bytes], Item | None], max_len: int = 256, standalone: bytes = b"") -> None:
        self._parse = parse
        self._lines = LineSplitter(max_len, standalone)

    def _convert(self, lines: list[bytes | FrameError]) -> list[Item]:
        out: list[Item] = []
        for line in lines:
            if isinstance(line, FrameError):
                out.append(line)
                continue
            try:
                item = self._parse(line)
            except FrameError as exc:
                if not exc.raw:
                    exc.raw = line
                out.append(exc)
                continue
            if item is not None:
                out.append(item)
        return out

    def feed_items(self, data: bytes) -> list[Item]:
        """Everything decoded from ``data``, signals included."""
        return self._convert(self._lines.feed(data))

    def feed(self, data: bytes) -> list[Event | FrameError]:
        """Events and errors only (:class:`drivers.base.StreamDecoder`)."""
        return [i for i in self.feed_items(data) if not isinstance(i, Signal)]

    def flush(self) -> list[Item]:
        """Report a partial line."""
        return self._convert(self._lines.flush())

    def reset(self) -> None:
        """Forget buffered bytes."""
        self._lines.reset()
