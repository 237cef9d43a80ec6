"""Driver supervisor: one task per device, restart with backoff, health for the status page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from drivers.base import Measurement, Sink
from drivers.errors import FrameError, TransportError
from edge.config import DeviceConfig
from edge.store.ledger import Item, ReadingIn
from edge.supervisor import DeviceHealth, DeviceSink, Supervisor
from tests.edge.hubkit import bp, wait_until


class FlakyDriver:
    """Sends one reading and one bad frame, then loses its link; every run."""

    runs = 0

    def __init__(self, device_id: str, options: Mapping[str, Any]) -> None:
        self.device_id = device_id

    async def run(self, sink: Sink) -> None:
        FlakyDriver.runs += 1
        sink.state(True, "test link")
        await sink.event(bp(FlakyDriver.runs))
        await sink.event(Measurement(kind="cuff_pressure", observations=(), live=True))
        sink.frame_error(FrameError("bad checksum", b"\x01\x02"))
        raise TransportError("link lost")


async def test_crashing_driver_is_restarted_and_its_health_tracked() -> None:
    stored: list[Item] = []
    errors: list[tuple[str, FrameError]] = []
    live: list[str] = []

    async def submit(item: Item) -> int:
        stored.append(item)
        return len(stored)

    dev = DeviceConfig(id="bp-1", driver="flaky", station_id="room-1")
    sup = Supervisor([dev], {"flaky": FlakyDriver}, submit, lambda d, e: errors.append((d, e)),
                     lambda station, m: live.append(station), base_delay=0.01, max_delay=0.05)
    sup.start()
    await wait_until(lambda: FlakyDriver.runs >= 3)
    await sup.stop()
    h = sup.health["bp-1"]
    assert h.failures >= 2 and "link lost" in (h.last_error or "") and not h.connected
    assert h.readings >= 2 and h.last_reading_ms and h.frame_errors >= 2
    assert all(isinstance(i, ReadingIn) and i.station_id == "room-1" for i in stored)
    assert errors[0][0] == "bp-1" and errors[0][1].raw == b"\x01\x02" and live[0] == "room-1"
    assert h.summary().startswith("error: TransportError")
    await asyncio.sleep(0)


async def test_a_repeat_tells_the_store_how_long_its_driver_has_been_running() -> None:
    """The store keeps a reading on show since before the driver started off later sessions."""
    got: list[ReadingIn] = []

    async def submit(item: object) -> None:
        assert isinstance(item, ReadingIn)
        got.append(item)

    device = DeviceConfig(id="scale-1", driver="x", station_id="room-1")
    sink = DeviceSink(device, DeviceHealth("scale-1", "room-1", "x"), submit, lambda _d, _e: None)
    sink.driver_started = time.monotonic() - 2.0
    await sink.event(Measurement(kind="weight", observations=(), repeats=True))
    await sink.event(Measurement(kind="weight", observations=()))
    assert got[0].on_show_ms is not None and got[0].on_show_ms >= 2000 and got[1].on_show_ms is None
