"""Driver supervisor: one asyncio task per configured device, restarted with backoff.

Each device gets a :class:`DeviceSink` (the ``drivers.base.Sink`` the driver reports to)
and a :class:`DeviceHealth` the status page and telemetry show. A driver that raises —
``TransportError`` or any bug — is logged and restarted after 1 s, 2 s, 4 s ... up to
60 s (with jitter); the delay resets after it has run for a minute.

A configuration change goes through :meth:`Supervisor.apply`: devices are compared by
their whole configuration, and only the added, removed and changed ones are started or
stopped; an unchanged device keeps its task, its link and its health. Stopping a driver
cancels its task again until it ends (a cancel can be lost inside a third-party wait),
bounded by ``STOP_GUARD_S``, so a stubborn driver can never hang a configuration change.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import msgspec

from drivers.base import CardRead, Driver, Event, Measurement
from drivers.errors import FrameError
from edge.config import DeviceConfig
from edge.crashpoints import crashpoint
from edge.store.ledger import IdentifyIn, Item, ReadingIn
from protocol import idnum
from protocol.backoff import Backoff
from protocol.model import SIMULATED

log = logging.getLogger("edge.supervisor")
STOP_GUARD_S = 10.0  #: longest wait for one driver to end after it was cancelled


@dataclass(frozen=True)
class Changes:
    """What :meth:`Supervisor.apply` did, by device id."""

    started: tuple[str, ...] = ()
    stopped: tuple[str, ...] = ()
    restarted: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for logs and command replies."""
        return (f"{len(self.started)} started, {len(self.stopped)} stopped, {len(self.restarted)} restarted, "
                f"{len(self.unchanged)} unchanged")


async def stop_task(task: asyncio.Task[Any], guard_s: float = STOP_GUARD_S) -> bool:
    """Cancel ``task`` until it ends (at most ``guard_s``); False when it would not stop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + guard_s
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=min(0.2, max(0.0, deadline - loop.time())))
        if loop.time() >= deadline and not task.done():
            log.error("driver task %s ignored cancellation for %.0f s; left behind: %s", task.get_name(), guard_s,
                      task.get_stack(limit=3))
            return False
    if not task.cancelled():
        task.exception()  # retrieved: a driver that failed while stopping is not an unhandled error
    return True


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class DeviceHealth:
    """What the hub knows about one device right now."""

    device_id: str
    station_id: str
    driver: str
    connected: bool = False
    detail: str = ""
    last_reading_ms: int | None = None
    last_error: str | None = None
    last_error_ms: int | None = None
    frame_errors: int = 0
    failures: int = 0  #: driver crashes / link failures since start
    readings: int = 0

    def summary(self) -> str:
        """One word for telemetry: connected, disconnected or error: ..."""
        if self.connected:
            return "connected"
        return f"error: {self.last_error}" if self.last_error else "disconnected"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


class DeviceSink:
    """The :class:`drivers.base.Sink` of one device: stores events through the writer."""

    def __init__(self, device: DeviceConfig, health: DeviceHealth, submit: Callable[[Item], Awaitable[Any]],
                 store_frame_error: Callable[[str, FrameError], None],
                 live: Callable[[str, Measurement], None] | None = None, simulated: bool = False) -> None:
        self.device = device
        self.simulated = simulated  #: flag every measurement "simulated" ([hub] simulated = true)
        self.health = health
        self._submit = submit
        self._frame_error = store_frame_error
        self._live = live
        #: monotonic time the current driver object was made (what a repeat was on show by)
        self.driver_started: float | None = None

    async def event(self, event: Event) -> None:
        """Store a measurement or card read; returns once it is durably committed."""
        crashpoint("after_decode")
        if isinstance(event, Measurement):
            if event.live:
                if self._live is not None:
                    self._live(self.device.station_id, event)
                return
            if self.simulated and SIMULATED not in event.status:
                event = msgspec.structs.replace(event, status=(*event.status, SIMULATED))
            on_show = (int((time.monotonic() - self.driver_started) * 1000)
                       if event.repeats and self.driver_started is not None else None)
            await self._submit(ReadingIn(self.device.station_id, self.device.id, event, on_show))
            self.health.readings += 1
            self.health.last_reading_ms = _now_ms()
        elif isinstance(event, CardRead):
            await self._submit(IdentifyIn(self.device.station_id, event.subject))
            who = idnum.mask(event.subject.national_id) if event.subject.national_id else event.subject.source
            log.info("station %s: patient identified (%s)", self.device.station_id, who)

    def frame_error(self, error: FrameError) -> None:
        """Keep the rejected frame for inspection and count it."""
        self.health.frame_errors += 1
        self.health.last_error = f"{error.reason}: {error}"
        self.health.last_error_ms = _now_ms()
        log.warning("device %s rejected a frame: %s", self.device.id, error)
        self._frame_error(self.device.id, error)

    def state(self, connected: bool, detail: str = "") -> None:
        """Link state from the driver."""
        if connected != self.health.connected:
            log.info("device %s %s %s", self.device.id, "connected" if connected else "disconnected", detail)
        self.health.connected, self.health.detail = connected, detail


class Supervisor:
    """Runs every configured device's driver and keeps its health."""

    def __init__(self, devices: list[DeviceConfig], kinds: Mapping[str, Callable[..., Driver]],
                 submit: Callable[[Item], Awaitable[Any]], store_frame_error: Callable[[str, FrameError], None],
                 live: Callable[[str, Measurement], None] | None = None,
                 base_delay: float = 1.0, max_delay: float = 60.0, simulated: bool = False) -> None:
        self.devices = devices
        self.simulated = simulated
        self.kinds = kinds
        self.submit = submit
        self.store_frame_error = store_frame_error
        self.live = live
        self.base_delay, self.max_delay = base_delay, max_delay
        self.health: dict[str, DeviceHealth] = {
            d.id: DeviceHealth(d.id, d.station_id, d.driver) for d in devices
        }
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self) -> None:
        """Start one task per device."""
        for d in self.devices:
            self._start(d)

    def _start(self, d: DeviceConfig) -> None:
        self._tasks[d.id] = asyncio.create_task(self._keep_running(d), name=f"device-{d.id}")

    async def stop(self) -> None:
        """Cancel every driver task and wait for them (bounded, see :func:`stop_task`)."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await asyncio.gather(*(stop_task(t) for t in tasks))

    async def apply(self, devices: list[DeviceConfig], kinds: Mapping[str, Callable[..., Driver]],
                    simulated: bool | None = None) -> Changes:
        """Move to a new device list, touching only the devices whose configuration changed.

        A change of ``simulated`` (``[hub] simulated``) changes every device.
        """
        old = {d.id: d for d in self.devices}
        new = {d.id: d for d in devices}
        gone = sorted(old.keys() - new.keys())
        every = simulated is not None and simulated != self.simulated
        changed = sorted(i for i in old.keys() & new.keys() if every or old[i] != new[i]
                         or kinds.get(new[i].driver) is not self.kinds.get(new[i].driver))
        await asyncio.gather(*(stop_task(self._tasks.pop(i)) for i in (*gone, *changed) if i in self._tasks))
        for i in gone:
            self.health.pop(i, None)
        self.devices, self.kinds = list(devices), kinds
        self.simulated = self.simulated if simulated is None else simulated
        added = sorted(new.keys() - old.keys())
        for i in (*changed, *added):
            d = new[i]
            self.health[i] = DeviceHealth(d.id, d.station_id, d.driver)
            self._start(d)
        return Changes(tuple(added), tuple(gone), tuple(changed), tuple(sorted(old.keys() & new.keys() - set(changed))))

    async def _keep_running(self, d: DeviceConfig) -> None:
        health = self.health[d.id]
        sink = DeviceSink(d, health, self.submit, self.store_frame_error, self.live, self.simulated)
        backoff = Backoff(self.base_delay, self.max_delay)
        current: Driver | None = None
        while True:
            started = time.monotonic()
            try:
                driver = self.kinds[d.driver](d.id, d.options)
                if driver is not current:  # a new object, no memory (factories reuse an unchanged device's)
                    current, sink.driver_started = driver, started
                await driver.run(sink)
                problem = "driver returned"
            except asyncio.CancelledError:
                health.connected = False
                raise
            except Exception as exc:
                problem = f"{type(exc).__name__}: {exc}"
            health.connected = False
            health.failures += 1
            health.last_error, health.last_error_ms = problem, _now_ms()
            if time.monotonic() - started > 60:
                backoff.reset()
            wait = backoff.next()
            log.warning("device %s (%s) stopped: %s; restarting in %.1f s", d.id, d.driver, problem, wait)
            await asyncio.sleep(wait)
