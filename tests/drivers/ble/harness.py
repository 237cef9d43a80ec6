"""Test harness: a recording Sink, and a BLE driver wired to simulated peripherals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from drivers.base import Event, Measurement
from drivers.ble.bleak_transport import BleakGattClient
from drivers.ble.config import BleConfig
from drivers.ble.manager import BleDriver
from drivers.ble.profiles import PROFILES
from drivers.errors import FrameError
from firmware_sim.ble.peripheral import Air
from tests.support.waiting import HANG_S


class RecordingSink:
    """Keeps everything a driver reports; ``wait_for`` waits (without timing) for a condition."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.errors: list[FrameError] = []
        self.states: list[tuple[bool, str]] = []
        self._changed = asyncio.Event()

    async def event(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def frame_error(self, error: FrameError) -> None:
        self.errors.append(error)
        self._changed.set()

    def state(self, connected: bool, detail: str = "") -> None:
        self.states.append((connected, detail))
        self._changed.set()

    @property
    def measurements(self) -> list[Measurement]:
        return [e for e in self.events if isinstance(e, Measurement)]

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self._changed.clear()
            await self._changed.wait()


def sim_driver(air: Air, kind: str, *, sleeps: list[float] | None = None, **config: Any) -> BleDriver:
    """A real BleDriver whose bleak client is the simulated peripheral, wrapped in the real adapter."""
    recorded = sleeps if sleeps is not None else []

    async def sleep(seconds: float) -> None:
        recorded.append(seconds)
        await asyncio.sleep(0)

    return BleDriver(
        f"test-{kind}", PROFILES[kind], BleConfig.from_mapping("test", {"backoff_initial": 0.5, **config}),
        client_factory=lambda device, on_disconnect: BleakGattClient(air.client(device, on_disconnect)),
        scanner=air, sleep=sleep,
    )


async def run_until(driver: BleDriver, sink: RecordingSink, condition: Callable[[], bool]) -> None:
    """Run the driver until ``condition`` holds, let the loop settle, then stop it.

    The ``wait_for`` guard only turns a hang into a failure; nothing is asserted on time.
    """
    task = asyncio.create_task(driver.run(sink))
    try:
        await asyncio.wait_for(sink.wait_for(condition), HANG_S)
        for _ in range(200):  # let any late duplicate or stray frame arrive before checking
            await asyncio.sleep(0)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
