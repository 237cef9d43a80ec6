"""PostgreSQL message store (asyncpg) with group commit across connections.

Each batch is committed by ONE statement (``INSERT ... SELECT FROM
unnest(...)``), so one WAL flush covers every message waiting at that moment; ``writers`` connections
let the next batch commit while the previous one is still being flushed. Duplicate
detection is the unique ``dedup_key`` (sender + MSH-10 of accepted messages): the
statement bumps ``duplicates`` on the first copy and reports it.

The DDL below is self-contained (``CREATE ... IF NOT EXISTS``) so the listener can run
before the cloud migrations know about it; fold it into them when merging.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import asyncpg

from cloud.mllp.errors import StoreError
from cloud.mllp.sealing import Sealer, SealError
from cloud.mllp.store import GroupCommitter, InboundMeta, StoredMessage, StoreResult
from protocol.ids import uuid7

DDL = """
CREATE TABLE IF NOT EXISTS hl7_inbound (
    id            uuid PRIMARY KEY,
    seq           bigint GENERATED ALWAYS AS IDENTITY,  -- arrival order (uuid7 ties within a millisecond)
    received_at   timestamptz NOT NULL,
    peer          text NOT NULL,
    sender        text NOT NULL DEFAULT '',
    control_id    text NOT NULL DEFAULT '',
    message_type  text NOT NULL DEFAULT '',
    status        text NOT NULL CHECK (status IN ('accepted', 'error', 'rejected', 'garbage', 'oversized')),
    ack_code      text NOT NULL DEFAULT '',
    reason        text NOT NULL DEFAULT '',
    dedup_key     text UNIQUE,
    duplicates    integer NOT NULL DEFAULT 0,
    raw           bytea NOT NULL,
    sealed        boolean NOT NULL DEFAULT false,
    processed_at  timestamptz,
    process_error text
);
CREATE INDEX IF NOT EXISTS hl7_inbound_pending ON hl7_inbound (seq)
    WHERE status = 'accepted' AND processed_at IS NULL;
"""

_INSERT = """
INSERT INTO hl7_inbound (id, received_at, peer, sender, control_id, message_type, status, ack_code, reason,
                         dedup_key, raw, sealed)
SELECT *, $12::boolean FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[],
                                   $7::text[], $8::text[], $9::text[], $10::text[], $11::bytea[])
ON CONFLICT (dedup_key) DO UPDATE SET duplicates = hl7_inbound.duplicates + 1
RETURNING id::text, dedup_key, ack_code, reason, xmax::text <> '0' AS duplicate
"""


def _ts(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


class PgMessageStore:
    """:class:`~cloud.mllp.store.MessageStore` on PostgreSQL; ``await PgMessageStore.open(dsn)``."""

    def __init__(self, dsn: str, max_batch: int = 1000, writers: int = 2, sealer: Sealer | None = None) -> None:
        self.dsn = dsn
        self.sealer = sealer
        self._idle: list[asyncpg.Connection] = []  #: writer connections not in use right now
        self.committer: GroupCommitter[tuple[bytes, InboundMeta], StoreResult] = GroupCommitter(
            self._commit, max_batch, concurrency=writers)

    @classmethod
    async def open(cls, dsn: str, max_batch: int = 1000, writers: int = 2,
                   sealer: Sealer | None = None) -> PgMessageStore:
        """Connect and create the table if needed; ``writers`` batches may commit at once.

        With a ``sealer`` every message is stored encrypted (it carries ID numbers and names).
        """
        self = cls(dsn, max_batch, writers, sealer)
        conn = await self._connection()
        try:
            await conn.execute(DDL)
        finally:
            self._release(conn)
        return self

    async def _connection(self) -> asyncpg.Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
        try:
            return await asyncpg.connect(self.dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StoreError(f"cannot connect to PostgreSQL for HL7 storage: {exc}") from exc

    def _release(self, conn: asyncpg.Connection) -> None:
        if not conn.is_closed():
            self._idle.append(conn)

    async def store(self, raw: bytes, meta: InboundMeta) -> StoreResult:
        """Durably store one message (batched with concurrent callers)."""
        return await self.committer.submit((raw, meta))

    def submit(self, raw: bytes, meta: InboundMeta) -> asyncio.Future[StoreResult]:
        """Like :meth:`store`, as a future (the listener writes the ACK from its callback)."""
        return self.committer.submit_future((raw, meta))

    async def _commit(self, items: Sequence[tuple[bytes, InboundMeta]]) -> list[StoreResult]:
        first: dict[str, int] = {}  # dedup_key -> index of its first occurrence in this batch
        rows: list[tuple[str, bytes, InboundMeta]] = []
        row_id: dict[int, str] = {}  # item index -> id of the row inserted for it
        for i, (raw, meta) in enumerate(items):
            key = meta.dedup_key
            if key is not None and key in first:
                continue
            if key is not None:
                first[key] = i
            row_id[i] = uuid7(meta.received_at)
            rows.append((row_id[i], raw, meta))
        conn = await self._connection()
        try:
            returned = await conn.fetch(
                _INSERT, [r[0] for r in rows], [_ts(m.received_at) for _, _, m in rows],
                [m.peer for _, _, m in rows], [m.sender for _, _, m in rows], [m.control_id for _, _, m in rows],
                [m.message_type for _, _, m in rows], [m.status for _, _, m in rows],
                [m.ack_code for _, _, m in rows], [m.reason for _, _, m in rows],
                [m.dedup_key for _, _, m in rows], [self._seal(raw) for _, raw, _ in rows], self.sealer is not None)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            conn.terminate()
            raise StoreError(f"HL7 message batch not stored: {exc}") from exc
        self._release(conn)
        by_key = {r["dedup_key"]: r for r in returned if r["dedup_key"] is not None}
        by_id = {r["id"]: r for r in returned}
        out = []
        for i, (_, meta) in enumerate(items):
            key = meta.dedup_key
            rec = by_key[key] if key is not None else by_id[row_id[i]]
            again = key is not None and first[key] != i
            out.append(StoreResult(rec["id"], bool(rec["duplicate"]) or again, rec["ack_code"], rec["reason"]))
        return out

    def _seal(self, raw: bytes) -> bytes:
        return raw if self.sealer is None else self.sealer.seal(raw, "hl7_inbound")

    def _open(self, raw: bytes, sealed: bool) -> bytes:
        if not sealed:
            return raw
        if self.sealer is None:
            raise SealError("hl7_inbound holds encrypted messages but no at-rest key is configured")
        return self.sealer.open(raw, "hl7_inbound")

    async def fetch_pending(self, limit: int = 100) -> list[StoredMessage]:
        """Accepted messages not processed yet, oldest first."""
        conn = await self._connection()
        try:
            rows = await conn.fetch(
                "SELECT id::text, raw, sealed, received_at, control_id, message_type FROM hl7_inbound "
                "WHERE status = 'accepted' AND processed_at IS NULL ORDER BY seq LIMIT $1", limit)
        finally:
            self._release(conn)
        return [StoredMessage(r["id"], self._open(r["raw"], r["sealed"]), int(r["received_at"].timestamp() * 1000),
                              r["control_id"], r["message_type"]) for r in rows]

    async def mark_processed(self, message_id: str, error: str | None = None) -> None:
        """Record that a message was processed (``error``: why its results could not be used)."""
        conn = await self._connection()
        try:
            await conn.execute("UPDATE hl7_inbound SET processed_at = now(), process_error = $2 WHERE id = $1::uuid",
                               message_id, error)
        finally:
            self._release(conn)

    async def close(self) -> None:
        """Stop the writer and close the connection."""
        await self.committer.close()
        while self._idle:
            await self._idle.pop().close()
