"""Issue 17 finding 5, over real HTTP: refusals of unauthenticated requests are audited as
aggregated rows (source, route, reason, count, first/last seen), so a flood cannot grow the
append-only audit log without bound, and every refusal class is audited (413 included).
The rows are ordinary audit_log entries: the hash chain seals and verifies them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from cloud.audit import OTHER_SOURCES, RefusalTally
from cloud.audit import chain as audit_chain
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from tests.cloud.support import make_cloud, serving
from tests.support.waiting import until

BATCH = {"Content-Type": "application/vnd.mchub.batch"}


async def test_600_junk_requests_from_two_sources_make_a_handful_of_rows_with_exact_counts(tmp_path: Path) -> None:
    cfg, _ = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", max_batch_bytes=4096)
    sent: dict[tuple[str, str, str], int] = {}

    async def flood(http: aiohttp.ClientSession, url: str, source: str) -> None:
        async def one(i: int) -> None:
            kind = i % 4
            if kind == 0:  # junk batch
                key, r = ("/api/v1/batches", "malformed"), await http.post(f"{url}/api/v1/batches",
                                                                            data=b"junk" * 20, headers=BATCH)
            elif kind == 1:  # oversize batch: 413 from its Content-Length
                key, r = ("/api/v1/batches", "too_large"), await http.post(f"{url}/api/v1/batches",
                                                                            data=b"x" * 5000, headers=BATCH)
            elif kind == 2:  # admin API with a wrong token
                key, r = ("/admin/v1/hubs", "http_401"), await http.get(f"{url}/admin/v1/hubs",
                                                                         headers={"Authorization": "Bearer no"})
            else:  # a provisioning login with junk: 400, then 429 past 20 a minute
                r = await http.post(f"{url}/api/v1/admin/login", data=b"{not json")
                key = ("/api/v1/admin/login", f"http_{r.status}")
            async with r:
                assert r.status in (400, 401, 413, 429), (key, r.status)
            sent[(source, *key)] = sent.get((source, *key), 0) + 1

        for start in range(0, 300, 20):
            await asyncio.gather(*(one(i) for i in range(start, start + 20)))

    async with serving(cfg) as url:
        for source in ("127.0.0.1", "127.0.0.2"):
            connector = aiohttp.TCPConnector(local_addr=(source, 0))
            async with aiohttp.ClientSession(connector=connector) as http:
                await flood(http, url, source)
    # the server has stopped: its last window is flushed
    db = await Database.connect(cfg.database.url, 2)
    try:
        rows = await db.fetch("SELECT actor, target, reason, detail FROM audit_log WHERE action = 'refusal.tally'")
        got = {(r["actor"], r["target"], r["reason"]): json.loads(r["detail"]) for r in rows}
        own = await db.fetch("SELECT action FROM audit_log WHERE outcome = 'refused' AND action <> 'refusal.tally'")
        await audit_chain.seal_all(db)
        verdict = await audit_chain.verify(db)
    finally:
        await db.close()
    assert sum(sent.values()) == 600
    print(f"600 unauthenticated refusals from 2 sources -> {len(rows)} audit rows")
    assert len(rows) == len(sent) <= 10 and own == []  # per source: 5 (route, reason) at most
    assert {k: d["count"] for k, d in got.items()} == sent
    for d in got.values():
        assert d["first_ms"] <= d["last_ms"] and d["status"] in (400, 401, 413, 429)
    assert verdict.ok, verdict.describe()


async def test_the_tally_is_bounded_per_window_and_keeps_counts_across_a_failed_write(tmp_path: Path) -> None:
    """The helper other doors (MLLP allow-list, STOW-RS) use: at most ``max_keys`` sources a
    window (the rest under one key), and counts survive a database that is briefly gone."""
    db = await Database.connect(f"sqlite:///{tmp_path / 'c.db'}", 2)
    try:
        await migrate(db)
        tally = RefusalTally(window_s=60, max_keys=10)
        for i in range(1000):
            tally.note(f"10.0.{i // 250}.{i % 250}", "mllp", "not_allowed", 0, at_ms=1000 + i)
        for i in range(500):  # past the limit, every route of every source is one key per reason
            tally.note(f"10.1.{i // 250}.{i % 250}", f"/api/v1/admin/hubs/H{i}/revoke", "http_401", 401)
        assert tally.pending() == 1500
        assert await tally.flush(db) == 12
        rows = await db.fetch("SELECT actor, reason, detail FROM audit_log WHERE action = 'refusal.tally'")
        counts = {(r["actor"], r["reason"]): json.loads(r["detail"])["count"] for r in rows}
        assert counts[(OTHER_SOURCES, "not_allowed")] == 990 and counts[(OTHER_SOURCES, "http_401")] == 500
        assert sum(counts.values()) == 1500
        tally.note("10.9.9.9", "/dicomweb/studies", "unauthenticated", 401)
        await db.fetch("ALTER TABLE audit_log RENAME TO audit_log_away")  # the next write fails ...
        assert await tally.flush(db) == 0 and tally.pending() == 1  # ... and the count waits for the next window
        await db.fetch("ALTER TABLE audit_log_away RENAME TO audit_log")
        assert await tally.flush(db) == 1 and tally.pending() == 0
    finally:
        await db.close()


async def test_a_flush_cancelled_while_it_writes_keeps_its_counts(tmp_path: Path) -> None:
    """A stop that cancels the window's flush mid-write (its transaction rolls back) loses no count: the
    final flush writes it. Before the fix the counts taken out for the write were gone."""
    db = await Database.connect(f"sqlite:///{tmp_path / 'c.db'}", 2)
    try:
        await migrate(db)
        tally = RefusalTally(window_s=60)
        for _ in range(52):
            tally.note("127.0.0.4", "(connection)", "limit", 503)
        async with db.transaction():  # the write waits for the connection ...
            flushing = asyncio.create_task(tally.flush(db))
            await until(lambda: tally.pending() == 0, "the flush took the counts out")  # ... after it took them
            flushing.cancel()
            await asyncio.gather(flushing, return_exceptions=True)
        assert tally.pending() == 52
        assert await tally.flush(db) == 1
        rows = await db.fetch("SELECT detail FROM audit_log WHERE action = 'refusal.tally'")
        assert [json.loads(r["detail"])["count"] for r in rows] == [52]
    finally:
        await db.close()
