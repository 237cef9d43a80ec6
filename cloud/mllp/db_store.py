"""The HL7 message store on the cloud :class:`~cloud.db.engine.Database` (PostgreSQL or SQLite).

Table ``hl7_inbound`` (migration 4, :mod:`cloud.integration.schema`). Every frame the
listener receives is committed here before it is acknowledged, through the
:class:`~cloud.mllp.store.GroupCommitter`: concurrent connections share one transaction,
so one WAL flush (fsync) covers every message waiting at that moment. On PostgreSQL a batch
is ONE statement (``INSERT ... SELECT FROM unnest(...)``) and ``writers`` batches may commit
at once on separate pool connections; SQLite has one writer.

Duplicate detection is the unique ``dedup_key`` (sender + MSH-10 of accepted messages):
a resend bumps ``duplicates`` on the first copy and gets the first copy's answer.
With an :class:`~cloud.crypto_at_rest.AtRest` the raw bytes are sealed (AES-256-GCM):
messages carry national ID numbers and names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cloud.crypto_at_rest import AtRest, AtRestError
from cloud.db.engine import Database, Tx
from cloud.mllp.store import GroupCommitter, InboundMeta, StoredMessage, StoreResult
from protocol.ids import now_ms, uuid7

COLUMN = "hl7_inbound.raw"  #: associated data of sealed messages

_INSERT_PG = """
INSERT INTO hl7_inbound (uid, received_ms, peer, sender, control_id, message_type, status, ack_code, reason,
                         dedup_key, raw, sealed)
SELECT *, $12::boolean FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                                   $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[])
ON CONFLICT (dedup_key) DO UPDATE SET duplicates = hl7_inbound.duplicates + 1
RETURNING uid, dedup_key, ack_code, reason, xmax::text <> '0' AS duplicate
"""
_INSERT_ONE = """
INSERT INTO hl7_inbound (uid, received_ms, peer, sender, control_id, message_type, status, ack_code, reason,
                         dedup_key, raw, sealed)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (dedup_key) DO NOTHING"""
_PENDING = ("SELECT id, uid, raw, sealed, received_ms, control_id, message_type FROM hl7_inbound "
            "WHERE status = 'accepted' AND processed_ms IS NULL ORDER BY id LIMIT $1")


class Hl7Store:
    """:class:`~cloud.mllp.store.MessageStore` in the cloud database."""

    def __init__(self, db: Database, at_rest: AtRest | None = None, *, max_batch: int = 1000,
                 writers: int = 2) -> None:
        self.db = db
        self.at_rest = at_rest
        concurrency = writers if db.dialect == "postgres" else 1
        self.committer: GroupCommitter[tuple[bytes, InboundMeta], StoreResult] = GroupCommitter(
            self._commit, max_batch, concurrency=concurrency)

    async def store(self, raw: bytes, meta: InboundMeta) -> StoreResult:
        """Durably store one message (batched with concurrent callers)."""
        return await self.committer.submit((raw, meta))

    def submit(self, raw: bytes, meta: InboundMeta) -> asyncio.Future[StoreResult]:
        """Like :meth:`store`, as a future (the listener writes the ACK from its callback)."""
        return self.committer.submit_future((raw, meta))

    def seal(self, raw: bytes) -> bytes:
        """The bytes as stored (sealed when an at-rest key is configured)."""
        return raw if self.at_rest is None else self.at_rest.seal_bytes(raw, COLUMN)

    def open(self, stored: bytes, sealed: bool) -> bytes:
        """The message bytes of a stored row; raises AtRestError for a wrong key."""
        if not sealed:
            return stored
        if self.at_rest is None:
            raise AtRestError("hl7_inbound holds sealed messages but no at-rest key was given")
        return self.at_rest.open_bytes(stored, COLUMN)

    async def _commit(self, items: Sequence[tuple[bytes, InboundMeta]]) -> list[StoreResult]:
        first: dict[str, int] = {}  # dedup_key -> index of its first occurrence in this batch
        rows: list[tuple[str, bytes, InboundMeta]] = []
        uid_of: dict[int, str] = {}
        for i, (raw, meta) in enumerate(items):
            key = meta.dedup_key
            if key is not None and key in first:
                continue
            if key is not None:
                first[key] = i
            uid_of[i] = uuid7(meta.received_at)
            rows.append((uid_of[i], self.seal(raw), meta))
        if self.db.dialect == "postgres":  # one statement = one transaction = one round trip
            found = await self._insert_pg(rows)
        else:
            async with self.db.transaction() as tx:
                found = await self._insert_sqlite(tx, rows)
        out = []
        for i, (_, meta) in enumerate(items):
            key = meta.dedup_key
            uid, dup, code, reason = found[key] if key is not None else found[uid_of[i]]
            again = key is not None and first[key] != i
            out.append(StoreResult(uid, dup or again, code, reason))
        return out

    async def _insert_pg(self, rows: list[tuple[str, bytes, InboundMeta]]) -> dict[str, Any]:
        metas = [m for _, _, m in rows]
        returned = await self.db.fetch(
            _INSERT_PG, [u for u, _, _ in rows], [m.received_at for m in metas], [m.peer for m in metas],
            [m.sender for m in metas], [m.control_id for m in metas], [m.message_type for m in metas],
            [m.status for m in metas], [m.ack_code for m in metas], [m.reason for m in metas],
            [m.dedup_key for m in metas], [raw for _, raw, _ in rows], self.at_rest is not None)
        found: dict[str, Any] = {}
        for r in returned:
            value = (r["uid"], bool(r["duplicate"]), r["ack_code"], r["reason"])
            found[r["dedup_key"] if r["dedup_key"] is not None else r["uid"]] = value
        return found

    async def _insert_sqlite(self, tx: Tx, rows: list[tuple[str, bytes, InboundMeta]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        sealed = self.at_rest is not None
        for uid, raw, m in rows:
            key = m.dedup_key
            n = await tx.execute(_INSERT_ONE, uid, m.received_at, m.peer, m.sender, m.control_id, m.message_type,
                                 m.status, m.ack_code, m.reason, key, raw, sealed)
            if n == 1:
                found[key if key is not None else uid] = (uid, False, m.ack_code, m.reason)
                continue
            await tx.execute("UPDATE hl7_inbound SET duplicates = duplicates + 1 WHERE dedup_key = $1", key)
            r = await tx.fetchrow("SELECT uid, ack_code, reason FROM hl7_inbound WHERE dedup_key = $1", key)
            found[str(key)] = (r["uid"], True, r["ack_code"], r["reason"])
        return found

    async def fetch_pending(self, limit: int = 100) -> list[StoredMessage]:
        """Accepted messages not processed yet, oldest first."""
        async with self.db.transaction() as tx:
            rows = await tx.fetch(_PENDING, limit)
        return [StoredMessage(r["uid"], self.open(bytes(r["raw"]), bool(r["sealed"])), r["received_ms"],
                              r["control_id"], r["message_type"]) for r in rows]

    async def mark_processed(self, message_id: str, error: str | None = None) -> None:
        """Record that a message was processed (``error``: why its results could not be used)."""
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE hl7_inbound SET processed_ms = $1, process_error = $2 WHERE uid = $3",
                             now_ms(), error, message_id)

    async def close(self) -> None:
        """Stop the group-commit writer (the database stays open: it is the cloud's)."""
        await self.committer.close()
