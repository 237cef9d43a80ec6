"""Readings durably committed per second on the hub: group commit vs one commit per reading.

Both runs use the product path (GroupWriter -> Ledger -> SQLite WAL, synchronous=FULL) on
a real disk, in the same process. The baseline awaits each reading before submitting the
next (a commit, and an fsync, per reading); the group-commit run has many producers in
flight, as a hub with many devices (or a device draining its memory) does.

    .venv/bin/python bench/bench_hub_store.py
"""

from __future__ import annotations

import asyncio
import shutil
import time

from bench.hub_common import disk_dir, machine, measurements
from edge.sessions import SessionManager
from edge.store.ledger import Ledger, ReadingIn
from edge.store.schema import open_db
from edge.store.writer import DiskGuard, GroupWriter


def _writer(d) -> GroupWriter:  # type: ignore[no-untyped-def]
    conn, _ = open_db(d / "hub.db", "bench-hub")
    return GroupWriter(Ledger(conn, SessionManager({}), lambda p, a: p), DiskGuard(d, 0))


async def _per_reading(seconds: float) -> tuple[float, int]:
    d = disk_dir("mchub-bench-store-")
    w = _writer(d)
    w.start()
    ms = measurements(100_000, seed=1)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        await w.submit(ReadingIn("station-1", "dev-1", ms[n]))
        n += 1
    elapsed = time.perf_counter() - start
    await w.stop()
    shutil.rmtree(d)
    return n / elapsed, w.commits


async def _grouped(total: int, producers: int) -> tuple[float, int]:
    d = disk_dir("mchub-bench-store-")
    w = _writer(d)
    w.start()
    ms = measurements(total, seed=2)
    per = total // producers

    async def producer(k: int) -> None:
        for m in ms[k * per:(k + 1) * per]:
            await w.submit(ReadingIn("station-1", f"dev-{k}", m))

    start = time.perf_counter()
    await asyncio.gather(*(producer(k) for k in range(producers)))
    elapsed = time.perf_counter() - start
    await w.stop()
    shutil.rmtree(d)
    return per * producers / elapsed, w.commits


def run(total: int = 100_000, producers: int = 1000) -> dict[str, float]:
    """Measure and return the figures (also used by ``mchub bench``)."""
    base, _ = asyncio.run(_per_reading(3.0))
    grouped, commits = asyncio.run(_grouped(total, producers))
    return {"hub store one commit per reading readings/s": round(base),
            "hub store group commit readings/s": round(grouped),
            "hub store group commit readings per fsync": round(total / max(commits, 1), 1),
            "hub store group/baseline ratio": round(grouped / base, 1)}


if __name__ == "__main__":
    print(machine())
    for name, value in run().items():
        print(f"{name:<48} {value:>12,}")
