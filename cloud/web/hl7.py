"""Hospital-side panels of the dashboard: MLLP inbound log, HIS outbound queue, unmatched results.

The HL7 listener keeps every inbound message in ``hl7_inbound`` (with the ACK code it
answered) and the vitals pushed to the HIS in ``hl7_outbound`` (:mod:`cloud.mllp`); a
panel shows nothing until its table exists. Results that matched no patient wait in
``results`` with no subject (the work list). All queries are parameterised.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from cloud import audit
from cloud.db.engine import Tx
from cloud.mllp import outbox as hl7_outbox
from cloud.web.queues import DAY_MS, Queue, hourly, table_exists


def _ms(value: Any) -> int | None:
    """Milliseconds from a timestamptz (PostgreSQL) or an integer (SQLite) column."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    return int(value)


async def mllp_log(tx: Tx, *, control_id: str | None = None, limit: int = 50) -> list[dict[str, Any]] | None:
    """The latest inbound HL7 messages with their ACK codes (None: no HL7 listener installed)."""
    if not await table_exists(tx, "hl7_inbound"):
        return None
    rows = await tx.fetch("SELECT received_at, peer, sender, control_id, message_type, status, ack_code, reason, "
                          "duplicates FROM hl7_inbound WHERE ($1 = '' OR control_id = $2) ORDER BY received_at DESC "
                          "LIMIT $3", control_id or "", control_id or "", limit)
    return [{**dict(r), "at_ms": _ms(r["received_at"])} for r in rows]


async def ack_counts(tx: Tx, now: int) -> list[tuple[str, float]]:
    """Inbound messages of the last 24 h by ACK code (AA, AE, AR, none)."""
    if not await table_exists(tx, "hl7_inbound"):
        return []
    since: Any = dt.datetime.fromtimestamp((now - DAY_MS) / 1000, dt.UTC) if tx.dialect == "postgres" \
        else now - DAY_MS
    rows = await tx.fetch("SELECT ack_code, COUNT(*) AS n FROM hl7_inbound WHERE received_at >= $1 "
                          "GROUP BY ack_code ORDER BY ack_code", since)
    return [(r["ack_code"] or "-", float(r["n"])) for r in rows]


async def his_queue(tx: Tx, now: int) -> Queue | None:
    """The HIS outbound queue from ``hl7_outbound`` (None until the HL7 sender is installed)."""
    if tx.dialect != "postgres" or not await table_exists(tx, "hl7_outbound"):
        return None
    counts = {"pending": 0, "dead": 0, "done_24h": 0}
    for r in await tx.fetch("SELECT state, COUNT(*) AS n FROM hl7_outbound WHERE state <> 'sent' "
                            "OR sent_at >= now() - interval '1 day' GROUP BY state"):
        counts["done_24h" if r["state"] == "sent" else r["state"]] = int(r["n"])
    rates = await tx.fetch("SELECT (extract(epoch FROM created_at) * 1000)::bigint / 3600000 AS h, "
                           "COUNT(*) AS n FROM hl7_outbound WHERE created_at >= now() - interval '1 day' GROUP BY 1")
    oldest = await tx.fetch("SELECT control_id, attempts, created_at, last_error FROM hl7_outbound "
                            "WHERE state = 'pending' ORDER BY id LIMIT 10")
    dead = await tx.fetch("SELECT control_id, attempts, created_at, ack_code, last_error FROM hl7_outbound "
                          "WHERE state = 'dead' ORDER BY id DESC LIMIT 50")
    return Queue(
        "his", counts, hourly(rates, now),
        oldest=[{"id": r["control_id"], "label": r["control_id"], "attempts": r["attempts"],
                 "age_s": (now - (_ms(r["created_at"]) or now)) // 1000, "reason": r["last_error"] or ""}
                for r in oldest],
        dead=[{"id": r["control_id"], "label": r["control_id"], "attempts": r["attempts"],
               "reason": " ".join(x for x in (r["ack_code"], r["last_error"]) if x), "at_ms": _ms(r["created_at"])}
              for r in dead],
        replayable=True, source="hl7_outbound")


async def replay_his(tx: Tx, control_id: str, *, actor: str) -> bool:
    """Put an HL7 dead letter back in the queue (audited in the same transaction)."""
    ok = await hl7_outbox.replay(tx.raw, control_id)
    if ok:
        await audit.write(tx, actor=actor, action="hl7.replay", outcome="ok", detail={"control_id": control_id})
    return ok


async def unmatched(tx: Tx, limit: int = 100) -> list[dict[str, Any]]:
    """Results no patient matched yet, newest first (the work list)."""
    rows = await tx.fetch("SELECT id, source, source_key, kind, code, value, unit, observed_ms, created_ms "
                          "FROM results WHERE subject_id IS NULL ORDER BY created_ms DESC LIMIT $1", limit)
    return [dict(r) for r in rows]
