"""Backlog drain: how fast a hub empties a large backlog into the cloud, and bytes per reading.

A hub database is filled with ``n`` realistic readings while "offline", then the sync
client drains it to the reference receiver (tests/support/refcloud.py, SQLite, run in its
own process) over real HTTP on loopback. Reported: readings/s from start of draining to
the last durable ack, and sealed bytes on the wire per reading (HTTP headers add ~150
bytes per batch of 5,000, i.e. 0.03 bytes per reading).

    .venv/bin/python bench/bench_drain.py [N]
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time

from bench.hub_common import disk_dir, machine, measurements, refcloud_process
from edge import config, identity
from edge.daemon import Hub
from edge.sessions import SessionManager
from edge.store.ledger import Ledger, ReadingIn
from edge.store.schema import open_db


def _fill(cfg: config.HubConfig, ident: identity.Identity, n: int) -> None:
    conn, _ = open_db(cfg.db_path, ident.hub_id)
    ledger = Ledger(conn, SessionManager({}), ident.encrypt, clock=_Clock())
    ms = measurements(n, seed=3)
    for i in range(0, n, 5000):
        ledger.commit([ReadingIn("station-1", f"dev-{j % 3}", m) for j, m in enumerate(ms[i:i + 5000], start=i)])
    conn.close()


class _Clock:
    """Hub receive times ~20 s apart on average, as in a busy clinic."""

    def __init__(self) -> None:
        self.t = 1_790_000_000_000

    def __call__(self) -> int:
        self.t += 20_000
        return self.t


async def _drain(cfg: config.HubConfig, n: int) -> tuple[float, float]:
    hub = Hub(cfg)
    start = time.perf_counter()
    await hub.start(web=False)
    while hub.reader.state()["acked_through"] < n:  # noqa: ASYNC110 - polling the database is the point
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    assert hub.sync is not None
    sent = hub.sync.sent_bytes / max(hub.sync.sent_records, 1)
    await hub.stop()
    return n / elapsed, sent


def run(n: int = 100_000) -> dict[str, float]:
    """Measure and return the figures (also used by ``mchub bench``)."""
    d = disk_dir("mchub-bench-drain-")
    proc, url, keyfile = refcloud_process(d)
    try:
        ident = identity.init(d / "identity", "bench-hub", keyfile)
        proc.stdin.write(f"bench-hub {ident.public_hex}\n")  # type: ignore[attr-defined]
        proc.stdin.flush()  # type: ignore[attr-defined]
        proc.stdout.readline()  # type: ignore[attr-defined]
        (d / "hub.toml").write_text(f'[hub]\nidentity_dir = "identity"\n[sync]\nurl = "{url}"\nretention_days = 30\n'
                                    f'batch_max_records = 5000\n[storage]\nmin_free_mb = 0\n', encoding="utf-8")
        cfg = config.load(d / "hub.toml")
        t = time.perf_counter()
        _fill(cfg, ident, n)
        fill_rate = n / (time.perf_counter() - t)
        rate, per_reading = asyncio.run(_drain(cfg, n))
    finally:
        proc.terminate()  # type: ignore[attr-defined]
        proc.wait()  # type: ignore[attr-defined]
        shutil.rmtree(d)
    return {"drain to reference receiver readings/s": round(rate),
            "drain bytes on the wire per reading": round(per_reading, 1),
            "backlog fill (ledger only) readings/s": round(fill_rate)}


if __name__ == "__main__":
    print(machine())
    for name, value in run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000).items():
        print(f"{name:<48} {value:>12,}")
