"""Transactional outbox of vitals ORU^R01 messages for the HIS, and its delivery worker.

``enqueue_vitals(conn, report)`` runs inside the caller's transaction (the one that
closes the station session), so a session produces its message exactly when it is
committed. The message is built once, with a control id derived from the row id, and
every resend uses the same bytes: the HIS drops duplicates by MSH-10.

:class:`OutboxWorker` claims due rows with ``FOR UPDATE SKIP LOCKED`` (any number of
cloud workers can run it), sends each over MLLP, and records the outcome: ``sent`` with
the ACK code; AE/AR -> ``dead`` with the receiver's reason; no ACK -> retried with
exponential backoff and jitter, ``dead`` after ``max_attempts``. :func:`replay` puts a
dead letter back in the queue.
"""

from __future__ import annotations

import dataclasses
import logging
import random

import asyncpg

from cloud.mllp.client import MllpSender
from cloud.mllp.errors import NegativeAck, SendError
from cloud.mllp.sealing import Sealer, SealError
from protocol.hl7.oru import VitalsReport, build_vitals_oru

log = logging.getLogger("mchub.cloud.mllp.outbox")

DDL = """
CREATE TABLE IF NOT EXISTS hl7_outbound (
    id              bigserial PRIMARY KEY,
    control_id      text NOT NULL UNIQUE,
    idempotency_key text NOT NULL UNIQUE,
    destination     text NOT NULL DEFAULT 'his',
    payload         bytea NOT NULL,
    sealed          boolean NOT NULL DEFAULT false,
    state           text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dead')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_until    timestamptz,
    ack_code        text,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX IF NOT EXISTS hl7_outbound_due ON hl7_outbound (next_attempt_at) WHERE state = 'pending';
"""

_CLAIM = """
UPDATE hl7_outbound SET locked_until = now() + make_interval(secs => $2), attempts = attempts + 1
WHERE id IN (
    SELECT id FROM hl7_outbound
    WHERE destination = $3 AND state = 'pending' AND next_attempt_at <= now()
      AND (locked_until IS NULL OR locked_until < now())
    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING id, control_id, payload, sealed, attempts
"""


def control_id_for(row_id: int) -> str:
    """MSH-10 of outbox row ``row_id`` (15 characters, within the v2.5.1 limit of 20)."""
    return f"MCH{row_id:012d}"


async def enqueue_vitals(conn: asyncpg.Connection, report: VitalsReport, destination: str = "his",
                         sealer: Sealer | None = None) -> str | None:
    """Add the ORU^R01 for ``report`` (``control_id`` is assigned here); None if the session was queued already.

    Call it inside the transaction that completes the session. ``report.session_id`` is the
    idempotency key. With a ``sealer`` the message (national ID, name) is stored encrypted.
    """
    row_id = await conn.fetchval("SELECT nextval(pg_get_serial_sequence('hl7_outbound', 'id'))")
    control_id = control_id_for(int(row_id))
    payload = build_vitals_oru(dataclasses.replace(report, control_id=control_id))
    inserted = await conn.fetchval(
        "INSERT INTO hl7_outbound (id, control_id, idempotency_key, destination, payload, sealed) "
        "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING RETURNING control_id",
        row_id, control_id, report.session_id, destination,
        payload if sealer is None else sealer.seal(payload, "hl7_outbound"), sealer is not None)
    return str(inserted) if inserted is not None else None


async def replay(conn: asyncpg.Connection, control_id: str) -> bool:
    """Put a dead letter back in the queue (dashboard "replay"); True if one was found."""
    status = await conn.execute(
        "UPDATE hl7_outbound SET state = 'pending', attempts = 0, next_attempt_at = now(), locked_until = NULL "
        "WHERE control_id = $1 AND state = 'dead'", control_id)
    return str(status).endswith(" 1")


class OutboxWorker:
    """Delivers due ``hl7_outbound`` rows of one destination through an :class:`MllpSender`."""

    def __init__(self, pool: asyncpg.Pool, sender: MllpSender, *, destination: str = "his", batch: int = 20,
                 max_attempts: int = 8, backoff: float = 2.0, max_backoff: float = 600.0, lease: float = 300.0,
                 rng: random.Random | None = None, sealer: Sealer | None = None) -> None:
        self.pool = pool
        self.sealer = sealer
        self.sender = sender
        self.destination = destination
        self.batch = batch
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.lease = lease
        self.rng = rng or random.Random()

    async def run_once(self) -> int:
        """Claim and deliver one batch of due messages; returns how many were claimed."""
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(_CLAIM, self.batch, self.lease, self.destination)
        for row in rows:
            payload = row["payload"]
            if row["sealed"]:
                if self.sealer is None:
                    raise SealError("hl7_outbound holds encrypted messages but no at-rest key is configured")
                payload = self.sealer.open(payload, "hl7_outbound")
            await self._deliver(row["id"], row["control_id"], payload, row["attempts"])
        return len(rows)

    async def _deliver(self, row_id: int, control_id: str, payload: bytes, attempts: int) -> None:
        try:
            ack = await self.sender.send(payload)
        except NegativeAck as exc:
            log.warning("HIS refused %s: %s -> dead letter", control_id, exc.reason)
            await self._finish(row_id, "dead", exc.code, exc.reason)
            return
        except SendError as exc:
            if attempts >= self.max_attempts:
                reason = f"no ACK after {attempts} attempts: {exc}"
                log.warning("HIS delivery of %s gave up: %s", control_id, reason)
                await self._finish(row_id, "dead", None, reason)
                return
            delay = min(self.max_backoff, self.backoff * 2 ** (attempts - 1)) * self.rng.uniform(0.5, 1.0)
            log.info("HIS delivery of %s failed (%s); retry in %.1f s", control_id, exc, delay)
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "UPDATE hl7_outbound SET locked_until = NULL, last_error = $2, "
                    "next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1", row_id, str(exc), delay)
            return
        await self._finish(row_id, "sent", ack.code, None)

    async def _finish(self, row_id: int, state: str, ack_code: str | None, error: str | None) -> None:
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE hl7_outbound SET state = $2, ack_code = $3, last_error = $4, locked_until = NULL, "
                "sent_at = CASE WHEN $2 = 'sent' THEN now() END WHERE id = $1", row_id, state, ack_code, error)
