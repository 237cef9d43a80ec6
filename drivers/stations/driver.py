"""Serial station driver: one dialect, push or poll, over a serial port or TCP serial server.

Configuration (``[[stations.devices]]``; ``driver = "serial-station"`` or ``"serial-bp"``):

| key | default | meaning |
|---|---|---|
| ``address`` | required | serial port (``/dev/ttyUSB0``, a by-id path); TCP server host if ``transport = "tcp"`` |
| ``transport``, ``port`` | ``"serial"`` | ``"tcp"`` and the TCP port for a serial-to-Ethernet server |
| ``dialect`` | required (``accutorr`` for serial-bp) | see :mod:`drivers.stations.dialects` |
| ``mode`` | dialect's default | ``push``: the device sends when a measurement completes; ``poll``: the hub asks |
| ``poll_interval`` | 1.0 | seconds between requests in poll mode |
| ``baudrate`` | dialect's default (9600) | |
| ``idle_flush`` | 0.3 | seconds of silence after which a partial frame is reported as truncated |
| dialect keys | | e.g. ``checksum``, ``date_order``, ``fn_both``, ``poll_request`` |

In poll mode a station keeps answering with the measurement of the person standing on it;
the driver reports it once and again only after the values change or the platform was
empty in between. The state lives on the driver object, and the factory hands the same
object back for an unchanged device (:mod:`drivers.instances`), so a supervisor that
restarts the driver after a link failure does not repeat a measurement. A new object (the
hub restarted) has no such memory: its first poll-mode measurement before the station
answered "empty" is marked ``repeats`` and the hub compares it with the last reading it
stored from this device (``edge.store.repeats``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from drivers.base import Measurement, Sink
from drivers.errors import FrameError
from drivers.instances import reuse
from drivers.links import Link, LinkOptions, link_spec, open_link
from drivers.options import device_options, option_error
from drivers.stations.common import Item, Signal
from drivers.stations.dialects import dialect

log = logging.getLogger("mchub.drivers.stations")


_SECONDS = Meta(gt=0, le=3600)


class StationOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The keys of a serial station's table besides where it is (:func:`~drivers.links.link_spec`) and
    its dialect's own keys (:mod:`drivers.stations.dialects`); ``mode`` is checked against the dialect."""

    dialect: Annotated[str, Meta(examples=["a5"])] | None = None  #: default: the driver kind's (serial-bp: accutorr)
    mode: Literal["push", "poll"] | None = None  #: default: the dialect's
    baudrate: Annotated[int, Meta(ge=1, examples=[9600])] | None = None  #: default: the dialect's
    poll_interval: Annotated[float, _SECONDS, Meta(examples=[1.0])] = 1.0  #: seconds between requests (poll mode)
    idle_flush: Annotated[float, _SECONDS, Meta(examples=[0.3])] = 0.3  #: seconds of silence that end a frame


class SerialStation:
    """Driver for a serial height/weight station or BP monitor."""

    def __init__(self, device_id: str, config: Mapping[str, Any], default_dialect: str | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 link_factory: Callable[[LinkOptions, int], Awaitable[Link]] = open_link) -> None:
        self.device_id = device_id
        self.link = link_spec(device_id, config)
        o = device_options(device_id, config, StationOptions)
        self.dialect = dialect(o.dialect or default_dialect, device_id)
        self.mode = o.mode or self.dialect.default_mode
        if self.mode not in self.dialect.modes:
            raise option_error(device_id, "mode", f"{self.mode!r} is not supported by dialect {self.dialect.name}",
                               "use mode = " + " or ".join(f'"{m}"' for m in self.dialect.modes))
        self.baudrate = o.baudrate or self.dialect.baudrate
        self.poll_interval = o.poll_interval
        self.idle_flush = o.idle_flush
        self.decoder, self.request = self.dialect.setup(device_id, config)
        self._clock = clock
        self._link_factory = link_factory
        self._last_key: tuple[tuple[str, float], ...] | None = None
        self._fresh = True  #: nothing reported and no "empty" seen since this object was made

    async def run(self, sink: Sink) -> None:
        """Read (and in poll mode, ask) until cancelled; TransportError when the link fails."""
        link = await self._link_factory(self.link, self.baudrate)
        self.decoder.reset()
        sink.state(True, f"{self.dialect.name} ({self.mode}) on {link.description}")
        log.info("%s: %s station, %s mode, on %s", self.device_id, self.dialect.name, self.mode, link.description)
        try:
            await self._loop(link, sink)
        finally:
            link.close()
            sink.state(False, "station link closed")

    async def _loop(self, link: Link, sink: Sink) -> None:
        next_poll = self._clock()
        last_rx = self._clock()
        while True:
            wait = self.idle_flush
            if self.mode == "poll":
                now = self._clock()
                if now >= next_poll:
                    await link.write(self.request)
                    next_poll = now + self.poll_interval
                wait = max(0.001, min(wait, next_poll - now))
            data = await link.read(wait)
            if data:
                last_rx = self._clock()
                await self.handle(self.decoder.feed_items(data), sink)
            elif self._clock() - last_rx >= self.idle_flush:
                await self.handle(self.decoder.flush(), sink)
                last_rx = self._clock()

    async def handle(self, items: list[Item], sink: Sink) -> None:
        """Report decoded items: measurements once, frame errors always, signals to the repeat filter."""
        for item in items:
            if isinstance(item, FrameError):
                log.warning("%s: bad frame (%s): %s", self.device_id, item.reason, item)
                sink.frame_error(item)
            elif isinstance(item, Signal):
                if item.kind == "empty":
                    self._last_key = None
                    self._fresh = False
            elif isinstance(item, Measurement):
                key = tuple((o.code, o.value) for o in item.observations)
                if self.mode == "poll" and not self.dialect.self_deduplicating and key == self._last_key:
                    continue  # the same person still on the platform
                self._last_key = key
                if self.mode == "poll" and self._fresh:
                    item = msgspec.structs.replace(item, repeats=True)  # maybe shown since before a restart
                await sink.event(item)
                self._fresh = False


def make_station(device_id: str, config: Mapping[str, Any]) -> SerialStation:
    """Driver factory for ``driver = "serial-station"`` (the same object again for an unchanged device)."""
    return reuse("serial-station", device_id, config, lambda: SerialStation(device_id, config))


def make_bp(device_id: str, config: Mapping[str, Any]) -> SerialStation:
    """Driver factory for ``driver = "serial-bp"`` (dialect defaults to ``accutorr``)."""
    return reuse("serial-bp", device_id, config,
                 lambda: SerialStation(device_id, config, default_dialect="accutorr"))
