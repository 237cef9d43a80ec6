"""Clock jumps on the hub: a hub that booted without a battery clock (1970), NTP fixing it,
then the wall clock going hours back and forward while a device keeps measuring.

The hub runs in this process with injected wall and monotonic clocks (``Hub(clock=...,
monotonic=...)``) and syncs to
a real ``mchub cloud serve``. Records are ordered by seq, not time: the cloud gets one
gap-free stream with every reading exactly once although the times in it jump around.
Sessions measure idle time on the monotonic clock: a jump forward does not cut a patient's
session short, and a jump back does not keep it open for hours. Device-resend keys stored
under the 1970 clock are not forgotten when NTP jumps the clock 56 years forward.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from edge import config
from edge.daemon import Hub
from edge.store.ledger import ReadingIn
from tests.support.hubdriver import parse
from tests.support.linedevice import LineDevice, reading_line
from tests.support.system import CloudProc, HubRig, cloud_numbers, cloud_sql, expected_readings, reconcile
from tests.support.waiting import HANG_S

HOUR = 3_600_000


class WallClock:
    """The hub's wall clock (ms): real time plus an offset the test moves."""

    def __init__(self, start_ms: int) -> None:
        self.offset = start_ms - time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset

    def set(self, ms: int) -> None:
        self.offset = ms - time.time_ns() // 1_000_000

    def shift(self, ms: int) -> None:
        self.offset += ms


class SteadyClock:
    """The hub's monotonic clock (ms): a tenth of real speed, so a busy machine never idles a session
    past its window by accident; ``advance`` moves it on."""

    def __init__(self) -> None:
        self.extra = 0

    def __call__(self) -> int:
        return time.monotonic_ns() // 10_000_000 + self.extra

    def advance(self, ms: int) -> None:
        self.extra += ms


async def until(pred, seconds: float = HANG_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not pred():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_clock_jumps_keep_order_sessions_sync_and_dedup(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}"
    cloud = await asyncio.to_thread(lambda: CloudProc(tmp_path / "cloud", url))
    await asyncio.to_thread(cloud.start)
    device = LineDevice(total=900, window=16, card_every=50, rate=150).start()
    rig = await asyncio.to_thread(HubRig, tmp_path / "hub", cloud, device)
    rig.cfg.write_text(rig.cfg.read_text().replace('id = "room-1"\n', 'id = "room-1"\nsession_window_s = 5\n'))
    wall = WallClock(86_400_000)  # booted without a battery clock: 1970-01-02
    steady = SteadyClock()
    hub = Hub(config.load(rig.cfg), clock=wall, tick_s=0.2, monotonic=steady)
    await hub.start(web=False)
    try:
        # the first reading is stored while the clock says 1970 (the device measures for at least 6 s from
        # here: the jumps below fall within its readings however slowly the hub got this far)
        await until(lambda: hub.reader.state()["next_seq"] > 1)
        for jump in ("ntp", -5 * HOUR, +5 * HOUR, +3 * HOUR, -8 * HOUR):
            await asyncio.sleep(1.0)
            wall.set(time.time_ns() // 1_000_000) if jump == "ntp" else wall.shift(int(jump))
        await until(device.done.is_set)
        await until(lambda: hub.reader.state()["acked_through"] == hub.reader.state()["next_seq"] - 1)
        # a device resends a reading it sent while the clock said 1970 (its ack was lost): stored once
        first_seq = cloud_sql(cloud.db_url, "SELECT min(seq) FROM readings WHERE device_time = 'n3'")[0][0]
        _, m = parse(reading_line(3).strip())
        assert await hub.writer.submit(ReadingIn("room-1", "dev-1", m)) == first_seq  # type: ignore[arg-type]
        # the clock goes back 5 hours: the last session still times out once it has been idle for its window
        wall.shift(-5 * HOUR)
        await asyncio.sleep(0.5)
        assert hub.sessions.open  # the jump alone closes nothing
        stored = hub.reader.state()["next_seq"]
        steady.advance(6_000)
        # wait for the close's commit (next_seq moves on it; the open list empties inside the writer's
        # transaction, before the commit: waiting on that alone let the hub stop before the close was synced)
        await until(lambda: not hub.sessions.open and hub.reader.state()["next_seq"] > stored)
        await until(lambda: hub.reader.state()["acked_through"] == hub.reader.state()["next_seq"] - 1)
    finally:
        await hub.stop()
        device.stop()
        await asyncio.to_thread(cloud.stop)
    report = reconcile(expected_readings(device), cloud_numbers(cloud.db_url, rig.hub_id))
    assert report.ok, report
    rows = cloud_sql(cloud.db_url, "SELECT seq, at_ms FROM readings ORDER BY seq")
    ats = [r[1] for r in rows]
    assert min(ats) < 365 * 24 * HOUR and any(b < a for a, b in itertools.pairwise(ats))  # times jumped
    bound = cloud_sql(cloud.db_url, "SELECT count(*), count(DISTINCT session_id) FROM readings "
                                    "WHERE session_id IS NOT NULL")[0]
    assert bound == (900 - 18 - 49, 17)  # everything after the first card is bound, to its own card's session
    closed = cloud_sql(cloud.db_url, "SELECT close_reason FROM sessions ORDER BY seq")  # not by time!
    assert len(closed) == 18 and closed[-1][0] == "timeout" and all(r[0] == "next_card" for r in closed[:-1])
