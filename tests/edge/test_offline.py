"""Offline test: the cloud is unreachable for a simulated week of clinic traffic, then comes back."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from edge.store.ledger import IdentifyIn, ReadingIn, TickIn
from protocol.model import Subject
from tests.edge.hubkit import bp, started, synced, wait_until
from tests.support.refcloud import RefCloud

DAY_MS = 86_400_000


async def test_a_week_offline_then_everything_arrives_once_in_order(hub_dir: Path, refcloud: RefCloud) -> None:
    refcloud.down = True
    now = [int(time.time() * 1000) - 7 * DAY_MS]
    hub = await started(hub_dir, clock=lambda: now[0])
    n = 0
    try:
        start = now[0]
        for day in range(7):
            now[0] = start + day * DAY_MS
            for _patient in range(20):  # 20 patients a day, 10 readings each (one burst)
                await hub.writer.submit(IdentifyIn("room-1", Subject(national_id="11010519491231002X", name="王芳")))
                now[0] += 60_000
                burst = [ReadingIn("room-1", "dev-1", bp(n + i)) for i in range(1, 11)]
                await asyncio.gather(*(hub.writer.submit(r) for r in burst))
                n += 10
                now[0] += 30 * 60_000
                await hub.writer.submit(TickIn())  # the idle session times out
        assert hub.sync is not None and hub.sync.state in ("backoff", "sending")
        assert hub.reader.state()["acked_through"] == 0 and refcloud.requests == 0
        refcloud.down = False
        hub.sync.sync_now()
        await wait_until(lambda: synced(hub), seconds=60)
    finally:
        await hub.stop()
        await asyncio.sleep(0)
    rows = refcloud.records("clinic-1")
    assert [r[1] for r in rows] == list(range(1, len(rows) + 1))
    docs = [json.loads(r[3]) for r in rows]
    times = [d["at"] for d in docs]
    assert times == sorted(times) and times[-1] - times[0] > 6 * DAY_MS
    numbers = [int(d["device_time"][1:]) for d in docs if d["type"] == "reading"]
    assert numbers == list(range(1, n + 1))  # every reading, once, in the order it was taken
    assert n == 1400
    assert all(d.get("session_id") for d in docs if d["type"] == "reading")
    kinds = [d["type"] for d in docs]
    assert kinds.count("session_opened") == kinds.count("session_closed") == 140


async def test_a_retry_after_an_error_shows_waiting_to_retry_until_a_batch_gets_through(
        hub_dir: Path, refcloud: RefCloud) -> None:
    """The status page's sync state (等待重试 / 正在同步) as each request reaches the cloud: the first attempt is
    "sending"; every retry while the cloud is down, and the one that gets through, is "backoff" (a CI run's
    page showed 正在同步 with the cloud down: the retry had set it)."""
    refcloud.down = True
    hub = await started(hub_dir)
    seen: list[str] = []
    refcloud.on_request = lambda: seen.append(hub.sync.state if hub.sync else "-")
    try:
        await hub.writer.submit(IdentifyIn("room-1", Subject(national_id="11010519491231002X", name="王芳")))
        await hub.writer.submit(ReadingIn("room-1", "dev-1", bp(1)))
        await wait_until(lambda: len(seen) >= 3, seconds=60)  # the first attempt and two retries
        refcloud.down = False  # the next retry gets through (no sync_now: that starts afresh, as "sending")
        await wait_until(lambda: synced(hub), seconds=60)
        assert hub.sync is not None and hub.sync.state in ("ok", "idle")
    finally:
        await hub.stop()
    assert seen[0] == "sending" and set(seen[1:]) == {"backoff"}, seen
