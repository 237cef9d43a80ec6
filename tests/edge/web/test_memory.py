"""The hub's polled paths keep no memory per request (the short CI form of the hub soak).

A hub that runs for months serves its status page, its JSON status and the kiosk every
few seconds while readings arrive and sync. This runs those paths many rounds under
tracemalloc and compares what the hub's own code holds (allocations with a frame in
edge/, webui/, drivers/ or protocol/; the reference receiver in this process is left out)
after a warm-up and after many more rounds. Bounded structures fill and empty; a leak
keeps at least one block a round at one place, which fails the test and names the place.
It counts blocks, not seconds, so a loaded machine cannot make it flaky. The real process
over an hour is ``python3 dev.py soak --hub`` (docs/testing.md).
"""

from __future__ import annotations

import gc
import logging
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from tests.edge.hubkit import add_readings
from tests.edge.web.conftest import client, sign_in

WARMUP, ROUNDS = 15, 60
ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("edge", "webui", "drivers", "protocol")
OURS = [tracemalloc.Filter(True, f"{ROOT}/{package}/*", all_frames=True) for package in PACKAGES]
NOT_OURS = [tracemalloc.Filter(False, "*/tests/support/refcloud.py", all_frames=True),
            tracemalloc.Filter(False, tracemalloc.__file__)]


def held() -> tracemalloc.Snapshot:
    """What is currently allocated with one of our packages on the stack."""
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(OURS).filter_traces(NOT_OURS)


def size(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.statistics("filename"))


def ours(frames: list[str]) -> str:
    """The innermost lines of our own code in a formatted traceback."""
    lines = [f.strip() for f in frames if any(f"{ROOT}/{p}/" in f for p in PACKAGES)]
    return " <- ".join(reversed(lines[-3:]))


async def test_polled_pages_and_arriving_readings_do_not_grow_the_heap(web_hub: tuple[Any, Any],
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    hub, app = web_hub
    caplog.set_level(logging.ERROR, logger="edge.supervisor")  # the unreachable test device's retries
    tracemalloc.start(12)
    try:
        async with client(app) as staff:
            await sign_in(staff)
            n = 0

            async def one_round() -> None:
                nonlocal n
                await add_readings(hub, range(n, n + 2))
                n += 2
                for path in ("/", "/?lang=en", "/api/status", "/api/devices", "/api/sessions/today",
                             "/kiosk/room-1"):
                    assert (await staff.get(path)).status_code == 200, path
                await hub.telemetry()

            for _ in range(WARMUP):
                await one_round()
            before = held()
            for _ in range(ROUNDS):
                await one_round()
            after = held()
    finally:
        tracemalloc.stop()
    growth = after.compare_to(before, "traceback")
    top = "\n".join(f"  {d.size_diff:+d} B in {d.count_diff:+d} blocks: {ours(d.traceback.format())}"
                    for d in growth[:8])
    # bounded structures fill and empty (asyncio's heap of cancelled timers, the status page's
    # cache); a leak keeps at least one block a round at one place
    kept = [d for d in growth if d.count_diff >= ROUNDS]
    assert not kept, f"{len(kept)} place(s) keep a block every round; the largest changes:\n{top}"
    per_round = (size(after) - size(before)) / ROUNDS
    assert per_round < 1024, f"the hub's heap grew {per_round:.0f} B a round; the largest changes:\n{top}"
