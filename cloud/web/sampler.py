"""Once a minute, record the running totals the dashboard's rate charts are drawn from.

Each worker runs :func:`run`; a sample's key is ``(minute, metric)`` with ``ON CONFLICT DO
NOTHING``, and a worker that finds this minute sampled already does nothing, so several
workers write each minute once. Samples older than ``keep_days`` are deleted. Metrics:

* running totals: ``sync.records`` (readings and events stored), ``sync.batches`` (batches
  accepted); levels: ``sync.waiting`` (records waiting on hubs), ``outbox.pending``,
  ``outbox.dead``; lags in seconds: ``sync.lag_s`` (the longest an online hub with a backlog
  has gone without an accepted batch), ``outbox.lag_s`` (age of the oldest pending message);
* per minute: ``outbox.created.<queue>`` — messages enqueued in the previous minute for
  each outbound queue (his, mch, other), counted on the ``created_ms`` index; ``hl7.received``
  and ``hl7.errors`` — HL7 frames received in the previous minute, and those not answered
  AA/CA (index on ``received_ms``); so the charts never scan a day of messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cloud.db.engine import Database
from cloud.errors import CloudError
from cloud.web.queues import OUTBOX_QUEUES, queue_of
from protocol.ids import now_ms

log = logging.getLogger("mchub.cloud.web.sampler")
#: HL7 frames received in a minute, and those answered with anything but AA/CA (index on received_ms)
_HL7_MINUTE = ("SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN ack_code IN ('AA', 'CA') THEN 0 ELSE 1 END), 0) AS bad "
               "FROM hl7_inbound WHERE received_ms >= $1 AND received_ms < $2")
#: the oldest last accepted batch (or last sign of life) of an online, active hub that reports a backlog
_SYNC_BEHIND = ("SELECT MIN(COALESCE(s.last_batch_ms, h.last_seen_ms)) FROM hubs h LEFT JOIN "
                "(SELECT hub_id, MAX(last_batch_ms) AS last_batch_ms FROM sync_state GROUP BY hub_id) s "
                "ON s.hub_id = h.hub_id WHERE h.status = 'active' AND h.online AND h.queue_depth > 0")


async def sample(db: Database, at_ms: int | None = None, keep_days: int = 8) -> None:
    """Write this minute's samples (idempotent within a minute)."""
    now = now_ms() if at_ms is None else at_ms
    minute = now // 60_000
    async with db.transaction() as tx:
        if await tx.fetchval("SELECT COUNT(*) FROM dashboard_samples WHERE minute = $1 AND metric = 'sync.records'",
                             minute):
            return
        totals = await tx.fetchrow("SELECT COALESCE(SUM(records), 0) AS records, COALESCE(SUM(batches), 0) AS batches "
                                   "FROM sync_state")
        waiting = await tx.fetchval("SELECT COALESCE(SUM(queue_depth), 0) FROM hubs WHERE status = 'active'")
        out = {r["status"]: r["n"] for r in await tx.fetch(
            "SELECT status, COUNT(*) AS n FROM outbox WHERE status <> 'done' GROUP BY status")}
        oldest_batch = await tx.fetchval(_SYNC_BEHIND)
        oldest_pending = await tx.fetchval("SELECT MIN(created_ms) FROM outbox WHERE status = 'pending'")
        records, batches = (totals["records"], totals["batches"]) if totals else (0, 0)
        values = {"sync.records": records, "sync.batches": batches,
                  "sync.waiting": waiting, "outbox.pending": out.get("pending", 0), "outbox.dead": out.get("dead", 0),
                  "sync.lag_s": max(0, (now - oldest_batch) // 1000) if oldest_batch else 0,
                  "outbox.lag_s": max(0, (now - oldest_pending) // 1000) if oldest_pending else 0,
                  **{f"outbox.created.{q}": 0 for q in (*OUTBOX_QUEUES, "other")}}
        for r in await tx.fetch("SELECT topic, COUNT(*) AS n FROM outbox WHERE created_ms >= $1 AND created_ms < $2 "
                                "GROUP BY topic", (minute - 1) * 60_000, minute * 60_000):
            values[f"outbox.created.{queue_of(r['topic'])}"] += r["n"]
        hl7 = await tx.fetchrow(_HL7_MINUTE, (minute - 1) * 60_000, minute * 60_000)
        values["hl7.received"], values["hl7.errors"] = (hl7["n"], hl7["bad"]) if hl7 else (0, 0)
        for metric, value in values.items():
            await tx.execute("INSERT INTO dashboard_samples (minute, metric, value) VALUES ($1, $2, $3) "
                             "ON CONFLICT (minute, metric) DO NOTHING", minute, metric, int(value or 0))
        await tx.execute("DELETE FROM dashboard_samples WHERE minute < $1", minute - keep_days * 1440)


async def run(db: Database, stop: asyncio.Event, every_s: float = 60.0) -> None:
    """Sample every ``every_s`` until ``stop`` is set (the first after one period, not while the worker
    starts); a database outage is logged and retried next time."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        if stop.is_set():
            return
        try:
            await sample(db)
        except CloudError as exc:
            log.warning("dashboard sample skipped: %s", exc)
