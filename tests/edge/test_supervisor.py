"""Driver supervisor: one task per device, restart with backoff, health for the status page."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from typing import Any, ClassVar

from drivers.base import Measurement, Sink
from drivers.errors import FrameError, TransportError
from edge.config import DeviceConfig
from edge.store.ledger import Item, ReadingIn
from edge.supervisor import DeviceHealth, DeviceSink, Supervisor
from tests.edge.hubkit import bp, wait_until
from tests.support.waiting import HANG_S


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

class SteadyDriver:
    """Connects once and stays up; counts its runs per device."""

    runs: ClassVar[dict[str, int]] = {}

    def __init__(self, device_id: str, options: Mapping[str, Any]) -> None:
        self.device_id = device_id

    async def run(self, sink: Sink) -> None:
        SteadyDriver.runs[self.device_id] = SteadyDriver.runs.get(self.device_id, 0) + 1
        sink.state(True, "steady")
        await asyncio.Event().wait()


class StubbornDriver(SteadyDriver):
    """Ignores the first cancellation, as ``asyncio.wait_for`` on Python 3.11 does when its future is ready."""

    async def run(self, sink: Sink) -> None:
        sink.state(True, "stubborn")
        with contextlib.suppress(asyncio.CancelledError):  # swallowed
            await asyncio.Event().wait()
        await asyncio.Event().wait()


async def _nowhere(item: Item) -> int:
    return 0


async def test_a_device_change_touches_only_the_devices_that_changed() -> None:
    SteadyDriver.runs.clear()
    kinds = {"steady": SteadyDriver}
    a, b, c = (DeviceConfig(id=i, driver="steady", station_id="room-1", options={"id": i}) for i in "abc")
    sup = Supervisor([a, b, c], kinds, _nowhere, lambda d, e: None, base_delay=0.01)
    sup.start()
    await wait_until(lambda: all(sup.health[i].connected for i in "abc"))
    task_a = sup._tasks["a"]
    b2 = DeviceConfig(id="b", driver="steady", station_id="room-1", options={"id": "b", "rate": 2})
    d = DeviceConfig(id="d", driver="steady", station_id="room-2", options={"id": "d"})
    changes = await sup.apply([a, b2, d], kinds)
    assert (changes.started, changes.stopped, changes.restarted, changes.unchanged) == (("d",), ("c",), ("b",), ("a",))
    await wait_until(lambda: all(sup.health[i].connected for i in "abd"))
    assert sup._tasks["a"] is task_a and SteadyDriver.runs["a"] == 1  # never disturbed
    assert SteadyDriver.runs["b"] == 2 and SteadyDriver.runs["d"] == 1 and "c" not in sup.health
    again = await sup.apply([a, b2, d], kinds)  # the same list again: nothing moves
    assert again.unchanged == ("a", "b", "d") and SteadyDriver.runs == {"a": 1, "b": 2, "c": 1, "d": 1}
    flipped = await sup.apply([a, b2, d], kinds, simulated=True)  # [hub] simulated changes every device
    assert flipped.restarted == ("a", "b", "d") and sup.simulated
    await wait_until(lambda: SteadyDriver.runs == {"a": 2, "b": 3, "c": 1, "d": 2})
    await sup.stop()


async def test_a_driver_that_swallows_a_cancel_cannot_hang_a_change_or_the_stop() -> None:
    kinds = {"stubborn": StubbornDriver, "steady": SteadyDriver}
    card = DeviceConfig(id="card-1", driver="stubborn", station_id="room-1")
    bp1 = DeviceConfig(id="bp-1", driver="steady", station_id="room-1")
    sup = Supervisor([card, bp1], kinds, _nowhere, lambda d, e: None)
    sup.start()
    await wait_until(lambda: sup.health["card-1"].connected)
    changes = await asyncio.wait_for(sup.apply([bp1], kinds), HANG_S)  # a guard against a hang, not a timing check
    assert changes.stopped == ("card-1",) and sup.health["bp-1"].connected
    sup2 = Supervisor([card], kinds, _nowhere, lambda d, e: None)
    sup2.start()
    await wait_until(lambda: sup2.health["card-1"].connected)
    await asyncio.wait_for(sup2.stop(), HANG_S)
    await sup.stop()
