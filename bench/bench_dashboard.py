"""Dashboard page times on a city-sized cloud: 1,100 hubs, 200,000 outbox messages.

A throwaway PostgreSQL is filled like a city deployment after a busy day (1,100 hubs in
110 sites, 200,000 outbound messages over 24 h of which 2 % pending and 1 % dead, 20,000
HL7 frames received (2 % answered AE), 20,000 audit entries, a day of dashboard samples).
The cloud app runs in-process; a signed-in integration user requests the pages over ASGI.
Reported: median milliseconds per page, and as the baseline the same page's database
queries alone (ratio = page / queries).

    .venv/bin/python bench/bench_dashboard.py
"""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import machine
from cloud.config import CloudConfig
from cloud.web import charts, queues
from cloud.web.dashboard import headline, load_queues
from protocol.ids import now_ms
from tests.cloud.support import make_cloud
from tests.cloud.web.support import WEB, running, sign_in
from tests.support.services import PostgresServer

HUBS, SITES, MESSAGES, AUDIT, HL7 = 1_100, 110, 200_000, 20_000, 20_000


async def _fill(db: object, now: int) -> None:
    rnd = random.Random(5)
    async with db.transaction() as tx:  # type: ignore[attr-defined]
        con = tx.raw
        await con.copy_records_to_table("sites", records=[(f"s{i:03d}", f"site {i}", now) for i in range(SITES)],
                                        columns=["site_id", "name", "created_ms"])
        hubs = [(f"s{i % SITES:03d}-h{i:04d}", f"s{i % SITES:03d}", now, rnd.random() > 0.05,
                 now - rnd.randint(0, 600_000), rnd.choice([0] * 9 + [rnd.randint(1, 5000)])) for i in range(HUBS)]
        await con.copy_records_to_table("hubs", records=hubs, columns=["hub_id", "site_id", "created_ms", "online",
                                                                        "last_seen_ms", "queue_depth"])
        await con.copy_records_to_table("sync_state", records=[(h[0], 1, rnd.randint(1000, 90_000), 10, 50, 0,
                                                                now - rnd.randint(0, 3_600_000)) for h in hubs],
                                        columns=["hub_id", "epoch", "acked_through", "batches", "records",
                                                 "duplicates", "last_batch_ms"])
        topics = ["his.vitals", "mch.upload", "visit.closed", "visit.updated"]
        rows = []
        for i in range(MESSAGES):
            at = now - rnd.randint(0, 86_400_000)
            r = rnd.random()
            status = "dead" if r < 0.01 else "pending" if r < 0.03 else "done"
            rows.append((topics[i % 4], f"{topics[i % 4]}/case-{i}", "{}", status, 3 if status == "dead" else 1,
                         at, "HTTP 422: field error" if status == "dead" else None, at, at + 2000))
        await con.copy_records_to_table("outbox", records=rows, columns=[
            "topic", "idempotency_key", "payload", "status", "attempts", "next_attempt_ms", "last_error",
            "created_ms", "updated_ms"])
        await con.copy_records_to_table("audit_log", records=[
            (now - i * 4000, "ingest", "batch.refused" if i % 50 == 0 else "hub.touch", "ok", hubs[i % HUBS][0], "{}")
            for i in range(AUDIT)], columns=["at_ms", "actor", "action", "outcome", "hub_id", "detail"])
        await con.copy_records_to_table("dashboard_samples", records=[
            (now // 60_000 - m, metric, value(m)) for m in range(1, 1441)
            for metric, value in (("sync.records", lambda m: 1_000_000 - m * 40),
                                  ("outbox.created.his", lambda m: 35), ("outbox.created.mch", lambda m: 35),
                                  ("sync.batches", lambda m: 100_000 - m * 4), ("outbox.dead", lambda m: 2000),
                                  ("sync.lag_s", lambda m: m % 900), ("outbox.lag_s", lambda m: m % 600),
                                  ("hl7.received", lambda m: 14), ("hl7.errors", lambda m: m % 3 // 2))],
            columns=["minute", "metric", "value"])
        await con.copy_records_to_table("hl7_inbound", records=[
            (f"b{i}", now - i * 4000, "10.0.0.5", "LIS", f"LIS{i:08d}", "ORU^R01", "accepted",
             "AE" if i % 50 == 0 else "AA", b"MSH|...", now - i * 4000) for i in range(HL7)],
            columns=["uid", "received_ms", "peer", "sender", "control_id", "message_type", "status", "ack_code",
                     "raw", "processed_ms"])
        await con.execute("ANALYZE")


async def _median_ms(fn: Callable[[], Awaitable[object]], n: int) -> float:
    await fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 1)


async def measure(cfg: CloudConfig) -> dict[str, float]:
    """Page times against the cloud configured by ``cfg`` (an empty PostgreSQL database)."""
    async with running(cfg) as cloud:
        await _fill(cloud.state.db, now_ms())
        secret = await cloud.user("ops", "integration")
        async with cloud.client() as c:
            await sign_in(c, "ops", secret)

            async def page() -> None:
                assert (await c.get("/ui/dashboard")).status_code == 200

            async def queries() -> None:
                async with cloud.state.db.transaction() as tx:
                    await queues.hubs(tx, now_ms(), limit=100)
                    qs = await load_queues(tx, now_ms())
                    await queues.topics(tx)
                    await charts.build(cloud.state.db, tx, now_ms(), qs, str)

            async def live() -> None:
                async with cloud.state.db.transaction() as tx:
                    await headline(tx)

            async def search() -> None:
                r = await c.get("/ui/dashboard/search", params={"q": "mch.upload/case-12345"})
                assert r.status_code == 200

            figures = {"dashboard page ms": await _median_ms(page, 20),
                       "dashboard queries ms": await _median_ms(queries, 20),
                       "live numbers (SSE tick) ms": await _median_ms(live, 50),
                       "search by key ms": await _median_ms(search, 20)}
    figures["ratio page / queries"] = round(figures["dashboard page ms"] / figures["dashboard queries ms"], 2)
    return figures


def run() -> dict[str, float]:
    """Figures for ``mchub bench``."""
    base = Path(tempfile.mkdtemp(prefix="mchub-bench-"))
    base.chmod(0o755)  # the PostgreSQL service user must reach its data directory
    pg = PostgresServer(base / "pg").start()
    try:
        cfg, _ = make_cloud(base / "cloud", pg.create_database("dash"), extra_toml=WEB)
        out = asyncio.run(measure(cfg))
    finally:
        pg.stop()
    print(f"dashboard on {HUBS} hubs, {MESSAGES:,} outbox messages, PostgreSQL ({machine()})")
    for k, v in out.items():
        print(f"  {k:<30} {v:>8}")
    return out


if __name__ == "__main__":
    run()
