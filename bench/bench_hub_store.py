"""Readings durably committed per second on the hub, against raw sqlite3 doing the same work.

Product: GroupWriter -> Ledger -> SQLite WAL, synchronous=FULL, on a real disk, with P
producers (devices) each awaiting "stored" before sending its next reading — 4 and 16 as
a clinic hub has, 1,000 as a hub draining many device memories at once.

Baseline, in the same round: plain ``sqlite3`` on a fresh hub.db (same schema, WAL,
synchronous=FULL) inserting exactly the rows the product stored (records, seen, the
sync_state update), grouped into exactly the transactions the product committed, one
after another. The ratio (product / raw) says what the hub's Python path costs on top of
the durable work itself. Each figure is min/median/max of ROUNDS rounds.

    .venv/bin/python bench/bench_hub_store.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import figure, show
from bench.hub_common import disk_dir, machine, measurements
from edge.sessions import SessionManager
from edge.store.ledger import Item, Ledger, ReadingIn
from edge.store.schema import CACHE_KIB, open_db
from edge.store.writer import DiskGuard, GroupWriter

#: producers -> readings per round (enough for many groups, a few seconds at most)
SHAPES = {4: 2_000, 16: 8_000, 1000: 60_000}


class _RecordingLedger(Ledger):
    """The product's ledger, noting the seq range of every committed group."""

    groups: list[tuple[int, int]]

    def commit(self, items: list[Item]) -> list[Any]:
        first = self.next_seq
        out = super().commit(items)
        self.groups.append((first, self.next_seq))
        return out


async def _product(d: Path, total: int, producers: int) -> tuple[float, list[tuple[int, int]]]:
    conn, _ = open_db(d / "hub.db", "bench-hub")
    ledger = _RecordingLedger(conn, SessionManager({}), lambda p, a: p)
    ledger.groups = []
    w = GroupWriter(ledger, DiskGuard(d, 0))
    w.start()
    ms = measurements(total, seed=producers)
    per = total // producers

    async def producer(k: int) -> None:
        for m in ms[k * per:(k + 1) * per]:
            await w.submit(ReadingIn("station-1", f"dev-{k}", m))

    start = time.perf_counter()
    await asyncio.gather(*(producer(k) for k in range(producers)))
    elapsed = time.perf_counter() - start
    await w.stop()
    conn.close()
    return per * producers / elapsed, ledger.groups


def _raw(d: Path, source: Path, groups: list[tuple[int, int]]) -> float:
    """Raw sqlite3: the product's rows, in the product's transactions, same pragmas."""
    src = sqlite3.connect(source)
    records = src.execute("SELECT seq, type, at, station_id, device_id, session_id, enc, body FROM records "
                          "ORDER BY seq").fetchall()
    seen = {r[1]: r for r in src.execute("SELECT key, seq, at FROM seen")}
    src.close()
    conn, _ = open_db(d / "raw.db", "raw-hub")  # the same schema, then plain sqlite3 from here on
    conn.close()
    conn = sqlite3.connect(d / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    by_seq = {r[0]: r for r in records}
    batches = [([by_seq[s] for s in range(a, b)], [seen[s] for s in range(a, b) if s in seen], b)
               for a, b in groups if b > a]
    start = time.perf_counter()
    for rows, seen_rows, next_seq in batches:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO records (seq, type, at, station_id, device_id, session_id, enc, body) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.executemany("INSERT INTO seen (key, seq, at) VALUES (?, ?, ?)", seen_rows)
        conn.execute("UPDATE sync_state SET next_seq = ? WHERE id = 1", (next_seq,))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return len(records) / elapsed


def _db_bytes(path: Path, readings: int) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path.stat().st_size / readings


def one_round(producers: int, total: int) -> tuple[float, float, float, float]:
    """(product readings/s, raw readings/s, readings per commit, hub.db bytes per reading)."""
    d = disk_dir("mchub-bench-store-")
    try:
        product, groups = asyncio.run(_product(d, total, producers))
        raw = _raw(d, d / "hub.db", groups)
        stored = sum(b - a for a, b in groups)
        return product, raw, stored / max(len(groups), 1), _db_bytes(d / "hub.db", stored)
    finally:
        shutil.rmtree(d)


def run(rounds: int = 3) -> dict[str, Any]:
    """Measure and return the figures (also used by ``mchub bench``)."""
    out: dict[str, Any] = {}
    for producers, total in SHAPES.items():
        results = [one_round(producers, total) for _ in range(rounds)]
        label = f"hub store {producers} producers"
        out[f"{label} readings/s"] = figure([r[0] for r in results], "readings/s", [r[1] for r in results], 0)
        out[f"{label} readings per commit"] = figure([r[2] for r in results], "readings/commit")
        if producers == max(SHAPES):
            out["hub.db bytes per reading (no sessions)"] = figure([r[3] for r in results], "B/reading")
    return out


if __name__ == "__main__":
    print(machine())
    show(run(int(sys.argv[1]) if len(sys.argv) > 1 else 3))
