"""Transactional outbox: outbound work (HIS pushes, MCH uploads, ...) as rows.

* :func:`enqueue` runs inside the transaction that caused the work, so a message exists
  exactly when its data was committed. Each message has an idempotency key (unique):
  enqueueing the same key twice is a no-op, and receivers get the key to drop resends.
* :func:`claim` leases due messages to one worker. On PostgreSQL it selects with
  ``FOR UPDATE SKIP LOCKED``, so any number of workers claim disjoint messages without a
  coordinator; the lease (``next_attempt_ms`` pushed forward) makes a message due again
  if its worker dies while delivering.
* :func:`complete` / :func:`fail`: a failure is retried with exponential backoff and full
  jitter; after ``max_attempts`` (or a permanent refusal) the message is dead-lettered
  with the receiver's reason. :func:`replay` puts a dead letter back in the queue (audited).
* :func:`run_dispatcher` is the loop a sender (HL7, MCH) runs with its delivery function.
* :func:`record_event` writes a change-feed row (:data:`EVENT_TOPICS`, e.g. ``visit.closed``):
  nobody delivers it, so it is stored as ``done`` and never counts as a waiting message.
  Readers of the feed (the MCH assembler) select such rows by ``created_ms``; a trigger
  (``outbox_his_vitals``) turns a ``visit.closed`` row into a pending ``his.vitals`` message.

Delivery is at-least-once; the idempotency key turns it into exactly-once at the receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from cloud import audit
from cloud.config import OutboxConfig
from cloud.db.engine import Database, Tx
from cloud.errors import CloudError, OutboxError
from protocol import backoff
from protocol.ids import now_ms

log = logging.getLogger("mchub.cloud.outbox")


class DeliveryError(CloudError):
    """Raised by a delivery function: the receiver refused or could not be reached.

    ``permanent`` means retrying cannot help (the receiver rejected the content); the
    message goes straight to the dead letters with ``reason``.
    """

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class Message:
    """A claimed outbound message."""

    id: int
    topic: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int


#: change-feed topics: rows that record what happened, read by ``created_ms``, never delivered
EVENT_TOPICS = ("visit.closed", "visit.updated")
#: topics a sender delivers (HIS vitals, MCH uploads and follow-ups): /metrics reports each, 0 when empty
OUTBOUND_TOPICS = ("his.vitals", "mch.upload", "mch.followup")


async def enqueue(tx: Tx, topic: str, idempotency_key: str, payload: dict[str, Any], *,
                  delay_ms: int = 0, status: str = "pending") -> bool:
    """Add a message in the caller's transaction; False when the key was already queued."""
    now = now_ms()
    n = await tx.execute(
        "INSERT INTO outbox (topic, idempotency_key, payload, status, next_attempt_ms, created_ms, updated_ms) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING",
        topic, idempotency_key, msgspec.json.encode(payload).decode(), status, now + delay_ms, now, now)
    return n > 0


async def record_event(tx: Tx, topic: str, idempotency_key: str, payload: dict[str, Any]) -> bool:
    """Write a change-feed row (one of :data:`EVENT_TOPICS`) in the caller's transaction, as ``done``."""
    if topic not in EVENT_TOPICS:
        raise OutboxError(f"{topic!r} is not a change-feed topic (one of {', '.join(EVENT_TOPICS)})")
    return await enqueue(tx, topic, idempotency_key, payload, status="done")


_CLAIM_PG = """
UPDATE outbox SET next_attempt_ms = $1, updated_ms = $2 WHERE id IN (
    SELECT id FROM outbox WHERE topic = $3 AND status = 'pending' AND next_attempt_ms <= $4
    ORDER BY next_attempt_ms, id LIMIT $5 FOR UPDATE SKIP LOCKED)
RETURNING id, topic, idempotency_key, payload, attempts"""
_CLAIM_SQLITE = _CLAIM_PG.replace(" FOR UPDATE SKIP LOCKED", "")  # one writer at a time (BEGIN IMMEDIATE)


async def claim(db: Database, topic: str, *, limit: int = 10, lease_ms: int = 60_000) -> list[Message]:
    """Lease up to ``limit`` due messages of ``topic`` to the caller."""
    now = now_ms()
    sql = _CLAIM_PG if db.dialect == "postgres" else _CLAIM_SQLITE
    async with db.transaction() as tx:
        rows = await tx.fetch(sql, now + lease_ms, now, topic, now, limit)
    return sorted((Message(r["id"], r["topic"], r["idempotency_key"], msgspec.json.decode(r["payload"]),
                           r["attempts"]) for r in rows), key=lambda m: m.id)


async def complete(db: Database, message_id: int) -> None:
    """The receiver accepted the message."""
    async with db.transaction() as tx:
        await tx.execute("UPDATE outbox SET status = 'done', attempts = attempts + 1, updated_ms = $1 "
                         "WHERE id = $2", now_ms(), message_id)


def backoff_ms(attempts: int, config: OutboxConfig, rng: random.Random | None = None) -> int:
    """Delay before attempt ``attempts + 1``: exponential, capped, jittered 50-100 % (protocol.backoff)."""
    return int(1000 * backoff.delay(attempts, initial=config.base_delay_s,
                                    maximum=max(config.max_delay_s, config.base_delay_s), rng=rng))


async def fail(db: Database, message_id: int, reason: str, config: OutboxConfig, *,
               permanent: bool = False) -> str:
    """Record a failed attempt; returns the new status (``pending`` or ``dead``)."""
    now = now_ms()
    async with db.transaction() as tx:
        row = await tx.fetchrow("SELECT attempts, topic, idempotency_key FROM outbox WHERE id = $1", message_id)
        if row is None:
            raise OutboxError(f"outbox message {message_id} does not exist")
        attempts = row["attempts"] + 1
        dead = permanent or attempts >= config.max_attempts
        await tx.execute(
            "UPDATE outbox SET attempts = $1, status = $2, last_error = $3, next_attempt_ms = $4, updated_ms = $5 "
            "WHERE id = $6", attempts, "dead" if dead else "pending", reason[:2000],
            now + (0 if dead else backoff_ms(attempts, config)), now, message_id)
        if dead:
            await audit.write(tx, actor="outbox", action="outbox.dead_letter", outcome="dead", reason=reason[:200],
                              detail={"id": message_id, "topic": row["topic"], "attempts": attempts})
    return "dead" if dead else "pending"


async def replay(db: Database, message_id: int, *, actor: str) -> None:
    """Put a dead letter back in the queue, due now, with its attempts reset (audited)."""
    now = now_ms()
    async with db.transaction() as tx:
        n = await tx.execute("UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_ms = $1, "
                             "updated_ms = $2 WHERE id = $3 AND status = 'dead'", now, now, message_id)
        if not n:
            raise OutboxError(f"outbox message {message_id} is not a dead letter; `mchub cloud outbox list` shows "
                              "the dead letters and their ids")
        await audit.write(tx, actor=actor, action="outbox.replay", outcome="ok", detail={"id": message_id})


async def depths(tx: Tx) -> dict[tuple[str, str], int]:
    """Message counts by (topic, status) for metrics and the dashboard (done excluded)."""
    rows = await tx.fetch("SELECT topic, status, COUNT(*) AS n FROM outbox WHERE status <> 'done' "
                          "GROUP BY topic, status")
    return {(r["topic"], r["status"]): r["n"] for r in rows}


Deliver = Callable[[Message], Awaitable[None]]


async def run_dispatcher(db: Database, topic: str, deliver: Deliver, config: OutboxConfig,
                         stop: asyncio.Event, *, idle_s: float = 1.0, batch: int = 10,
                         lease_ms: int = 60_000) -> None:
    """Deliver ``topic`` messages until ``stop`` is set; ``deliver`` raises DeliveryError to refuse.

    ``lease_ms`` must cover delivering a whole batch, or a slow batch's tail is claimed again.
    """
    while not stop.is_set():
        messages = await claim(db, topic, limit=batch, lease_ms=lease_ms)
        for m in messages:
            try:
                await deliver(m)
            except DeliveryError as exc:
                status = await fail(db, m.id, exc.reason, config, permanent=exc.permanent)
                log.warning("outbox %s message %d refused (%s): %s", topic, m.id, status, exc.reason)
            else:
                await complete(db, m.id)
        if not messages:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), idle_s)
