"""What the integration dashboard shows, read from the cloud database (parameterised SQL only).

* :func:`hubs` — every hub with presence, last seen, sync lag and the queue depth it reports;
* :func:`sync_queue` — inbound sync: records waiting on hubs, stored, duplicates, refused
  batches (with the reason ingest recorded), records per hour from the dashboard samples;
* :func:`outbox_queue` — an outbound queue over the transactional outbox (HIS pushes: topics
  ``his*``/``hl7*``; MCH uploads: ``mch*``): counts by state, enqueued per hour, the oldest
  pending messages and the dead letters with the receiver's reason;
* :func:`topics` — every outbox topic by state (internal events such as ``visit.closed``).

A queue kept in a table of its own would plug in by returning a :class:`Queue`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from cloud.db.engine import Tx
from protocol.clinical.patient import CHINA

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: outbox topic patterns (two SQL LIKE patterns each) of the outbound queues
OUTBOX_QUEUES: dict[str, tuple[str, str]] = {"his": ("his%", "hl7%"), "mch": ("mch%", "mch%")}


@dataclass
class Queue:
    """One queue as the dashboard shows it."""

    key: str  #: sync | his | mch
    counts: dict[str, int]  #: state -> messages
    rates: list[tuple[str, float]]  #: (hour label, messages in that hour), oldest first, China time
    oldest: list[dict[str, Any]] = field(default_factory=list)  #: id, label, age_s, attempts
    dead: list[dict[str, Any]] = field(default_factory=list)  #: id, label, reason, attempts, at_ms
    replayable: bool = False  #: dead letters can be put back in the queue
    source: str = "outbox"  #: where the rows live (outbox, audit_log)


def queue_of(topic: str) -> str:
    """The outbound queue an outbox topic belongs to (``other`` for internal events)."""
    for key, patterns in OUTBOX_QUEUES.items():
        if any(topic.startswith(p.rstrip("%")) for p in patterns):
            return key
    return "other"


def hour_label(hour: int) -> str:
    """``MM-DD HH:00`` in China time (UTC+8, what every clinic reads) of an hour number since the epoch."""
    return dt.datetime.fromtimestamp(hour * 3600, CHINA).strftime("%m-%d %H:00")


def hourly(rows: list[Any], now: int, hours: int = 24) -> list[tuple[str, float]]:
    """Fill ``(hour, n)`` rows into one point per hour of the last ``hours``, oldest first (zeros where none)."""
    last = now // HOUR_MS
    got = {int(r["h"]): float(r["n"]) for r in rows}
    return [(hour_label(h), got.get(h, 0.0)) for h in range(last - hours + 1, last + 1)]


def increases(rows: list[Any]) -> list[dict[str, float]]:
    """Per-hour increase of a sampled running total from rows of (h, lo, hi), hours ascending: this hour's
    highest sample minus the previous hour's (the first hour sampled: its highest minus its lowest, so a
    cloud sampled for less than two hours still shows what it stored); never below 0."""
    out, prev = [], None
    for r in rows:
        base = r["lo"] if prev is None else prev
        out.append({"h": r["h"], "n": max(0, r["hi"] - base)})
        prev = r["hi"]
    return out


async def hubs(tx: Tx, now: int, limit: int = 100_000) -> list[dict[str, Any]]:
    """Hubs, offline and most backlogged first: presence, last seen, last batch, sync lag (s), queue depth."""
    rows = await tx.fetch(
        "SELECT h.hub_id, h.site_id, h.status, h.online, h.last_seen_ms, h.queue_depth, h.version, "
        "MAX(s.last_batch_ms) AS last_batch_ms, COALESCE(SUM(s.records), 0) AS records "
        "FROM hubs h LEFT JOIN sync_state s ON s.hub_id = h.hub_id "
        "GROUP BY h.hub_id, h.site_id, h.status, h.online, h.last_seen_ms, h.queue_depth, h.version "
        "ORDER BY h.online, COALESCE(h.queue_depth, 0) DESC, h.hub_id LIMIT $1", limit)
    out = []
    for r in rows:
        d = dict(r)
        d["online"] = bool(d["online"])
        waiting = d["queue_depth"] or 0
        since = d["last_batch_ms"] or d["last_seen_ms"]
        d["lag_s"] = max(0, (now - since) // 1000) if waiting and since else 0
        d["seen_s"] = (now - d["last_seen_ms"]) // 1000 if d["last_seen_ms"] else None
        out.append(d)
    return out


async def _samples_hourly(tx: Tx, metric: str, now: int) -> list[tuple[str, float]]:
    """Increase per hour of a sampled running total (dashboard_samples)."""
    rows = await tx.fetch("SELECT minute / 60 AS h, MIN(value) AS lo, MAX(value) AS hi FROM dashboard_samples "
                          "WHERE metric = $1 AND minute >= $2 GROUP BY minute / 60 ORDER BY h",
                          metric, (now - DAY_MS - HOUR_MS) // 60_000)
    return hourly(increases(rows), now)


async def sync_queue(tx: Tx, now: int) -> Queue:
    """Inbound sync: waiting on hubs, stored, duplicate and refused batches."""
    totals = await tx.fetchrow("SELECT COALESCE(SUM(records), 0) AS records, COALESCE(SUM(duplicates), 0) AS dup "
                               "FROM sync_state")
    waiting = await tx.fetchval("SELECT COALESCE(SUM(queue_depth), 0) FROM hubs WHERE status = 'active'")
    refused = await tx.fetch(
        "SELECT id, at_ms, hub_id, action, reason, detail FROM audit_log "
        "WHERE (action IN ('batch.refused', 'batch.gap') OR (action = 'refusal.tally' AND target = '/api/v1/batches')) "
        "AND at_ms >= $1 ORDER BY id DESC LIMIT 20", now - DAY_MS)  # tally rows: unproven senders, aggregated
    oldest = await tx.fetch(
        "SELECT h.hub_id, h.queue_depth, MAX(s.last_batch_ms) AS last_batch_ms FROM hubs h "
        "LEFT JOIN sync_state s ON s.hub_id = h.hub_id WHERE h.queue_depth > 0 AND h.status = 'active' "
        "GROUP BY h.hub_id, h.queue_depth ORDER BY MAX(s.last_batch_ms) LIMIT 10")
    records, dup = (int(totals["records"]), int(totals["dup"])) if totals is not None else (0, 0)
    counts = {"waiting": int(waiting or 0), "stored": records, "duplicate": dup,
              "refused_24h": len(refused)}
    return Queue(
        "sync", counts, await _samples_hourly(tx, "sync.records", now),
        oldest=[{"id": r["hub_id"], "label": f"{r['hub_id']} · {r['queue_depth']}", "attempts": None,
                 "age_s": (now - r["last_batch_ms"]) // 1000 if r["last_batch_ms"] else None} for r in oldest],
        dead=[{"id": r["id"], "label": f"{r['hub_id'] or '?'} {r['action']}", "reason": r["reason"] or "",
               "attempts": None, "at_ms": r["at_ms"], "detail": r["detail"]} for r in refused],
        source="audit_log")


_COUNTS = ("SELECT status, COUNT(*) AS n FROM outbox WHERE status <> 'done' "
           "AND (topic LIKE $1 OR topic LIKE $2) GROUP BY status")  # the partial index outbox_open
_OLDEST = ("SELECT id, topic, idempotency_key, attempts, created_ms, last_error FROM outbox WHERE status = 'pending' "
           "AND (topic LIKE $1 OR topic LIKE $2) ORDER BY created_ms, id LIMIT 10")
_DEAD = ("SELECT id, topic, idempotency_key, attempts, updated_ms, last_error FROM outbox WHERE status = 'dead' "
         "AND (topic LIKE $1 OR topic LIKE $2) ORDER BY updated_ms DESC LIMIT 50")


async def _created_hourly(tx: Tx, key: str, now: int) -> list[tuple[str, float]]:
    """Messages enqueued per hour (from the per-minute samples)."""
    rows = await tx.fetch("SELECT minute / 60 AS h, SUM(value) AS n FROM dashboard_samples WHERE metric = $1 "
                          "AND minute >= $2 GROUP BY minute / 60", f"outbox.created.{key}", (now - DAY_MS) // 60_000)
    return hourly(rows, now)


async def outbox_queue(tx: Tx, key: str, now: int) -> Queue:
    """An outbound queue over the outbox (``key`` in :data:`OUTBOX_QUEUES`).

    Reads only open messages (pending, dead: a partial index) and the samples, never the
    day's delivered messages, so the page costs the same with 200,000 messages a day.
    """
    pats = OUTBOX_QUEUES[key]
    counts = {"pending": 0, "dead": 0}
    for r in await tx.fetch(_COUNTS, *pats):
        counts[r["status"]] = int(r["n"])
    rates = await _created_hourly(tx, key, now)
    counts["in_24h"] = int(sum(v for _, v in rates))
    oldest = await tx.fetch(_OLDEST, *pats)
    dead = await tx.fetch(_DEAD, *pats)
    return Queue(
        key, counts, rates,
        oldest=[{"id": r["id"], "label": r["idempotency_key"], "attempts": r["attempts"],
                 "age_s": (now - r["created_ms"]) // 1000, "reason": r["last_error"] or ""} for r in oldest],
        dead=[{"id": r["id"], "label": r["idempotency_key"], "reason": r["last_error"] or "",
               "attempts": r["attempts"], "at_ms": r["updated_ms"]} for r in dead],
        replayable=True)


async def topics(tx: Tx) -> list[dict[str, Any]]:
    """Every outbox topic with its messages by state (done excluded)."""
    rows = await tx.fetch("SELECT topic, status, COUNT(*) AS n, MIN(created_ms) AS oldest FROM outbox "
                          "WHERE status <> 'done' GROUP BY topic, status ORDER BY topic, status")
    return [dict(r) for r in rows]
