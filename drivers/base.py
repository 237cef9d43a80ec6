"""What every driver produces and how the hub runs it.

Codec side (pure, no asyncio): a codec turns bytes into :class:`Measurement` or
:class:`CardRead` values, or raises :class:`~drivers.errors.FrameError`. A stream codec
implements :class:`StreamDecoder`: it buffers partial frames, resynchronises after
garbage and returns errors *as values*, so one bad frame never stops the stream.

Transport side: a :class:`Driver` runs until cancelled, reporting everything to a
:class:`Sink` (the hub's supervisor). It raises :class:`~drivers.errors.TransportError`
when the link drops; the supervisor restarts it with backoff.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from drivers.errors import FrameError
from protocol.model import Observation, ReadingKind, Subject


class Measurement(msgspec.Struct, frozen=True, kw_only=True):
    """One decoded measurement event, before the hub gives it a seq and a station."""

    kind: ReadingKind
    observations: tuple[Observation, ...]
    device_time: str | None = None  #: ISO 8601 as the device's clock gave it (no zone)
    status: tuple[str, ...] = ()  #: device status bits, e.g. "body_movement", "irregular_pulse"
    raw: bytes = b""
    user_id: int | None = None  #: the device's own user slot, when it reports one
    live: bool = False  #: intermediate value (cuff pressure while inflating): shown, never stored
    #: the device shows this reading again until a new one replaces it (a poll answer, a register
    #: still on show, a stored record) and the driver cannot tell whether the hub already stored it
    #: (the first answer after the driver started, or one stored but not yet acknowledged): the hub
    #: stores it only when it differs from the last reading it stored from this device
    repeats: bool = False
    #: how long before this report the device says it took the measurement (seconds, rounded down),
    #: e.g. the Accutorr's "minutes since the last NIBP measurement"
    age_s: int | None = None
    #: what the device's own frame numbers this reading with (a sequence register, a record
    #: number); part of the hub's repeat fingerprint, so two equal values with different numbers differ
    identity: str = ""


class CardRead(msgspec.Struct, frozen=True, kw_only=True):
    """A resident ID card read. ``photo`` is the opaque WLT blob: never logged."""

    subject: Subject
    photo: bytes = b""
    fingerprint: bytes = b""
    raw: bytes = b""


Event = Measurement | CardRead


class StreamDecoder(Protocol):
    """Incremental decoder for a byte stream (serial line, TCP)."""

    def feed(self, data: bytes) -> list[Event | FrameError]:
        """Consume ``data``; return every complete event or frame error found so far, in order."""
        ...


class Sink(Protocol):
    """Where a running driver reports (implemented by the hub's supervisor)."""

    async def event(self, event: Event) -> None:
        """A measurement or card read; returns once the hub has durably accepted it."""
        ...

    def frame_error(self, error: FrameError) -> None:
        """A frame was rejected; the hub keeps ``error.raw`` for inspection."""
        ...

    def state(self, connected: bool, detail: str = "") -> None:
        """Link state changed (shown on the status page)."""
        ...


class Driver(Protocol):
    """A running device connection."""

    device_id: str

    async def run(self, sink: Sink) -> None:
        """Talk to the device until cancelled; raise TransportError when the link fails."""
        ...
