"""The HL7 message store on the cloud :class:`~cloud.db.engine.Database` (PostgreSQL or SQLite).

Table ``hl7_inbound`` (migration 4, :mod:`cloud.db.shipped`). Every frame the
listener receives is committed here before it is acknowledged, through the
:class:`~cloud.mllp.store.GroupCommitter`: concurrent connections share one transaction,
so one WAL flush (fsync) covers every message waiting at that moment. On PostgreSQL a batch
is ONE statement (``INSERT ... SELECT FROM unnest(...)``) and ``writers`` batches may commit
at once on separate pool connections; SQLite has one writer.

Duplicate detection is the unique ``dedup_key`` (sender + MSH-10 + content digest of
accepted messages, migration 13): a resend bumps ``duplicates`` on the first copy and gets
the first copy's answer. A new message under a control id the sender already used
(``control_key``, indexed) is stored with ``control_id_reused``.
With an :class:`~cloud.records.crypto_at_rest.AtRest` the raw bytes are sealed (AES-256-GCM):
messages carry national ID numbers and names. The ACK a message was answered with is kept
beside it (``ack``, migration 16: at most ``ACK_STORED_MAX`` bytes, sealed likewise — its
ERR may quote the message) for the dashboard's message browser.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, NamedTuple

from cloud.db.engine import Database, Tx
from cloud.mllp.store import ACK_STORED_MAX, GroupCommitter, InboundMeta, StoredMessage, StoreResult, content_digest
from cloud.records.crypto_at_rest import AtRest, AtRestError
from protocol.ids import now_ms, uuid7

COLUMN = "hl7_inbound.raw"  #: associated data of sealed messages
ACK_COLUMN = "hl7_inbound.ack"  #: associated data of sealed answers (an ERR may quote the message)

_INSERT_PG = """
INSERT INTO hl7_inbound (uid, received_ms, peer, sender, control_id, message_type, status, ack_code, reason,
                         dedup_key, raw, sealed, control_key, control_id_reused, ack)
SELECT i.uid, i.received_ms, i.peer, i.sender, i.control_id, i.message_type, i.status, i.ack_code, i.reason,
       i.dedup_key, i.raw, $12::boolean, i.control_key,
       i.reused OR (i.control_key IS NOT NULL AND EXISTS (
           SELECT 1 FROM hl7_inbound h WHERE h.control_key = i.control_key)), i.ack
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::text[], $11::bytea[], $13::text[], $14::boolean[], $15::bytea[])
     AS i(uid, received_ms, peer, sender, control_id, message_type, status, ack_code, reason, dedup_key, raw,
          control_key, reused, ack)
ON CONFLICT (dedup_key) DO UPDATE SET duplicates = hl7_inbound.duplicates + 1
RETURNING uid, dedup_key, ack_code, reason, xmax::text <> '0' AS duplicate, control_id_reused
"""
_INSERT_ONE = """
INSERT INTO hl7_inbound (uid, received_ms, peer, sender, control_id, message_type, status, ack_code, reason,
                         dedup_key, raw, sealed, control_key, control_id_reused, ack)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) ON CONFLICT (dedup_key) DO NOTHING"""
_LEGACY = ("SELECT id, raw, sealed, control_key FROM hl7_inbound WHERE id > $1 AND dedup_key = control_key "
           "ORDER BY id LIMIT $2")
_PENDING = ("SELECT id, uid, raw, sealed, received_ms, control_id, message_type FROM hl7_inbound "
            "WHERE status = 'accepted' AND processed_ms IS NULL ORDER BY id LIMIT $1")
_PENDING_AT_LEAST = ("SELECT count(*) AS n FROM (SELECT 1 FROM hl7_inbound WHERE status = 'accepted' "
                     "AND processed_ms IS NULL LIMIT $1) AS p")


class _Row(NamedTuple):
    """One row of a batch to insert."""

    uid: str
    stored: bytes  #: raw, sealed when an at-rest key is configured
    ack: bytes | None  #: the answer sent back, bounded and sealed like ``stored`` (None: none was due)
    meta: InboundMeta
    dedup_key: str | None
    control_key: str | None
    reused: bool  #: the control key already appears earlier in the same batch


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

    def seal(self, raw: bytes, column: str = COLUMN) -> bytes:
        """The bytes as stored (sealed when an at-rest key is configured)."""
        return raw if self.at_rest is None else self.at_rest.seal_bytes(raw, column)

    def open(self, stored: bytes, sealed: bool, column: str = COLUMN) -> bytes:
        """The message (or, with ``ACK_COLUMN``, answer) bytes of a stored row; raises AtRestError for a wrong key."""
        if not sealed:
            return stored
        if self.at_rest is None:
            raise AtRestError("hl7_inbound holds sealed messages but no at-rest key was given")
        return self.at_rest.open_bytes(stored, column)

    async def _commit(self, items: Sequence[tuple[bytes, InboundMeta]]) -> list[StoreResult]:
        first: dict[str, int] = {}  # dedup_key -> index of its first occurrence in this batch
        keys: list[str | None] = []
        batch_controls: set[str] = set()  # control keys already used earlier in this batch
        rows: list[_Row] = []
        uid_of: dict[int, str] = {}
        for i, (raw, meta) in enumerate(items):
            key = meta.dedup_key(raw)
            keys.append(key)
            if key is not None and key in first:
                continue
            if key is not None:
                first[key] = i
            control = meta.control_key
            reused = control is not None and control in batch_controls
            if control is not None:
                batch_controls.add(control)
            uid_of[i] = uuid7(meta.received_at)
            ack = self.seal(meta.ack[:ACK_STORED_MAX], ACK_COLUMN) if meta.ack else None
            rows.append(_Row(uid_of[i], self.seal(raw), ack, meta, key, control, reused))
        if self.db.dialect == "postgres":  # one statement = one transaction = one round trip
            found = await self._insert_pg(rows)
        else:
            async with self.db.transaction() as tx:
                found = await self._insert_sqlite(tx, rows)
        out = []
        for i in range(len(items)):
            key = keys[i]
            uid, dup, code, reason, reused = found[key] if key is not None else found[uid_of[i]]
            again = key is not None and first[key] != i
            dup = dup or again
            out.append(StoreResult(uid, dup, code, reason, reused=reused and not dup))
        return out

    async def _insert_pg(self, rows: list[_Row]) -> dict[str, Any]:
        metas = [r.meta for r in rows]
        returned = await self.db.fetch(
            _INSERT_PG, [r.uid for r in rows], [m.received_at for m in metas], [m.peer for m in metas],
            [m.sender for m in metas], [m.control_id for m in metas], [m.message_type for m in metas],
            [m.status for m in metas], [m.ack_code for m in metas], [m.reason for m in metas],
            [r.dedup_key for r in rows], [r.stored for r in rows], self.at_rest is not None,
            [r.control_key for r in rows], [r.reused for r in rows], [r.ack for r in rows])
        found: dict[str, Any] = {}
        for r in returned:
            value = (r["uid"], bool(r["duplicate"]), r["ack_code"], r["reason"], bool(r["control_id_reused"]))
            found[r["dedup_key"] if r["dedup_key"] is not None else r["uid"]] = value
        return found

    async def _insert_sqlite(self, tx: Tx, rows: list[_Row]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        sealed = self.at_rest is not None
        for row in rows:
            uid, m, key = row.uid, row.meta, row.dedup_key
            reused = row.reused or (row.control_key is not None and await tx.fetchval(
                "SELECT 1 FROM hl7_inbound WHERE control_key = $1 LIMIT 1", row.control_key) is not None)
            n = await tx.execute(_INSERT_ONE, uid, m.received_at, m.peer, m.sender, m.control_id, m.message_type,
                                 m.status, m.ack_code, m.reason, key, row.stored, sealed, row.control_key, reused,
                                 row.ack)
            if n == 1:
                found[key if key is not None else uid] = (uid, False, m.ack_code, m.reason, reused)
                continue
            await tx.execute("UPDATE hl7_inbound SET duplicates = duplicates + 1 WHERE dedup_key = $1", key)
            r = await tx.fetchrow("SELECT uid, ack_code, reason FROM hl7_inbound WHERE dedup_key = $1", key)
            found[str(key)] = (r["uid"], True, r["ack_code"], r["reason"], False)
        return found

    async def upgrade_keys(self, batch: int = 500) -> int:
        """Give rows stored before migration 13 (key: sender + MSH-10 only) their content digest.

        Run once before the listener starts (the service does): it needs the at-rest key to
        read sealed messages, which SQL migrations do not have. Returns the rows upgraded.
        """
        done, last = 0, 0
        while True:
            async with self.db.transaction() as tx:
                legacy = await tx.fetch(_LEGACY, last, batch)
                for r in legacy:
                    raw = self.open(bytes(r["raw"]), bool(r["sealed"]))
                    await tx.execute("UPDATE hl7_inbound SET dedup_key = $1 WHERE id = $2",
                                     f"{r['control_key']}\x1f{content_digest(raw)}", r["id"])
            if not legacy:
                return done
            done += len(legacy)
            last = legacy[-1]["id"]

    async def fetch_pending(self, limit: int = 100) -> list[StoredMessage]:
        """Accepted messages not processed yet, oldest first."""
        async with self.db.transaction() as tx:
            rows = await tx.fetch(_PENDING, limit)
        return [StoredMessage(r["uid"], self.open(bytes(r["raw"]), bool(r["sealed"])), r["received_ms"],
                              r["control_id"], r["message_type"]) for r in rows]

    async def pending_at_least(self, n: int) -> bool:
        """Whether at least ``n`` accepted messages wait to be processed (reads at most ``n`` index entries)."""
        row = await self.db.fetchrow(_PENDING_AT_LEAST, n)
        return row is not None and int(row["n"]) >= n

    async def mark_processed(self, message_id: str, error: str | None = None) -> None:
        """Record that a message was processed (``error``: why its results could not be used)."""
        async with self.db.transaction() as tx:
            await tx.execute("UPDATE hl7_inbound SET processed_ms = $1, process_error = $2 WHERE uid = $3",
                             now_ms(), error, message_id)

    async def close(self) -> None:
        """Stop the group-commit writer (the database stays open: it is the cloud's)."""
        await self.committer.close()
