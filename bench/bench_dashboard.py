"""Dashboard page times on a city-sized cloud: 1,100 hubs, 200,000 outbox messages.

A throwaway PostgreSQL is filled like a city deployment after a busy day (1,100 hubs in
110 sites, 200,000 outbound messages over 24 h of which 2 % pending and 1 % dead, 20,000
audit entries, a day of dashboard samples, 200,000 inbound HL7 messages over 30 days of
which 1 % refused and 0.5 % failed in processing). The cloud app runs in-process; a
signed-in integration user requests the pages over ASGI. Reported: median milliseconds
per page, and as the baseline the same page's database queries alone (ratio = page /
queries). The message browser (cloud/web/messages.py) is measured when the code has it.

    .venv/bin/python bench/bench_dashboard.py
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench.common import machine
from cloud.config import CloudConfig
from cloud.web import charts, queues
from cloud.web.dashboard import headline, load_queues
from protocol.ids import now_ms
from tests.cloud.support import make_cloud
from tests.cloud.web.support import WEB, running, sign_in
from tests.support.services import PostgresServer

HUBS, SITES, MESSAGES, AUDIT, HL7 = 1_100, 110, 200_000, 20_000, 200_000


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
        raw = (b"MSH|^~\\&|LIS|H|MCHUB|C|20260301||ORU^R01|C|P|2.5.1\rPID|1||M1^^^H^MR\rOBR|1\r"
               b"OBX|1|NM|718-7^Hb^LN||128|g/L\r")
        hl7 = []
        for i in range(HL7):
            at = now - rnd.randint(0, 30 * 86_400_000)
            r = rnd.random()
            status, code, reason = ("rejected", "AR", "sender_not_allowed: X") if r < 0.01 else ("accepted", "AA", "")
            failed = "parse: bad" if 0.01 <= r < 0.015 else None
            hl7.append((f"u{i:08d}", at, "10.0.0.5:1", "LIS|H", f"LIS{i:08d}", "ORU^R01", status, code, reason, raw,
                        at + 500, failed))
        hl7.sort(key=lambda row: row[1])  # ids grow with arrival, as the listener writes them
        await con.copy_records_to_table("hl7_inbound", records=hl7, columns=[
            "uid", "received_ms", "peer", "sender", "control_id", "message_type", "status", "ack_code", "reason",
            "raw", "processed_ms", "process_error"])
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
            figures |= await _message_browser(cloud, c)
    return figures


async def _message_browser(cloud: Any, c: Any) -> dict[str, float]:
    """The message browser's pages and, as their baseline, the same searches without the page."""
    try:
        from cloud.integration import message_browser as mb
    except ImportError:  # the code before the message browser (a comparison run)
        return {}
    at_rest = cloud.state.ingestor.at_rest
    async with cloud.state.db.transaction() as tx:
        deep = await tx.fetchval("SELECT id FROM hl7_inbound ORDER BY id LIMIT 1 OFFSET 1000")  # page ~4,000
    day = dt.date.today() - dt.timedelta(days=10)
    cases = {"messages: newest": {}, "messages: failed": {"state": "failed"},
             "messages: by control id": {"control_id": "LIS00123456"},
             "messages: one day": {"from": day.isoformat(), "to": day.isoformat()},
             "messages: deep page": {"cursor": str(deep)}}
    out: dict[str, float] = {}
    for name, params in cases.items():
        async def page(params: dict[str, str] = params) -> None:
            assert (await c.get("/ui/dashboard/messages", params=params)).status_code == 200

        f = mb.Filters(state=params.get("state", ""), control_id=params.get("control_id", ""),
                       date_from=dt.date.fromisoformat(params["from"]) if "from" in params else None,
                       date_to=dt.date.fromisoformat(params["to"]) if "to" in params else None,
                       cursor=params.get("cursor", ""))

        async def query(f: Any = f) -> None:
            await mb.search(cloud.state.db, at_rest, f)

        out[f"{name} page ms"] = await _median_ms(page, 20)
        out[f"{name} query ms"] = await _median_ms(query, 20)
    out["messages: content, 2,000 opened, page ms"] = await _median_ms(
        lambda: c.get("/ui/dashboard/messages", params={"content": "not there"}), 5)
    return out


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
        print(f"  {k:<44} {v:>8}")
    return out


if __name__ == "__main__":
    run()
