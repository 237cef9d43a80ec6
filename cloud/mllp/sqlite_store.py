"""SQLite message store for the embedded (pilot) deployment, with the same group commit.

WAL journal with ``synchronous=FULL``: a batch's transaction is on disk when it
returns. SQLite calls run in a worker thread so the event loop keeps serving sockets.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from cloud.mllp.errors import StoreError
from cloud.mllp.sealing import Sealer, SealError
from cloud.mllp.store import GroupCommitter, InboundMeta, StoredMessage, StoreResult
from protocol.ids import now_ms, uuid7

DDL = """
CREATE TABLE IF NOT EXISTS hl7_inbound (
    id            TEXT PRIMARY KEY,
    received_at   INTEGER NOT NULL,
    peer          TEXT NOT NULL,
    sender        TEXT NOT NULL DEFAULT '',
    control_id    TEXT NOT NULL DEFAULT '',
    message_type  TEXT NOT NULL DEFAULT '',
    status        TEXT NOT NULL CHECK (status IN ('accepted', 'error', 'rejected', 'garbage', 'oversized')),
    ack_code      TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL DEFAULT '',
    dedup_key     TEXT UNIQUE,
    duplicates    INTEGER NOT NULL DEFAULT 0,
    raw           BLOB NOT NULL,
    sealed        INTEGER NOT NULL DEFAULT 0,
    processed_at  INTEGER,
    process_error TEXT
);
CREATE INDEX IF NOT EXISTS hl7_inbound_pending ON hl7_inbound (status) WHERE processed_at IS NULL;
"""


class SqliteMessageStore:
    """:class:`~cloud.mllp.store.MessageStore` in one SQLite file."""

    def __init__(self, path: str | Path, max_batch: int = 1000, sealer: Sealer | None = None) -> None:
        self.path = str(path)
        self.sealer = sealer
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(DDL)
        self._lock = threading.Lock()
        self.committer: GroupCommitter[tuple[bytes, InboundMeta], StoreResult] = GroupCommitter(
            self._commit, max_batch)

    async def store(self, raw: bytes, meta: InboundMeta) -> StoreResult:
        """Durably store one message (batched with concurrent callers)."""
        return await self.committer.submit((raw, meta))

    def submit(self, raw: bytes, meta: InboundMeta) -> asyncio.Future[StoreResult]:
        """Like :meth:`store`, as a future (the listener writes the ACK from its callback)."""
        return self.committer.submit_future((raw, meta))

    async def _commit(self, items: Sequence[tuple[bytes, InboundMeta]]) -> list[StoreResult]:
        try:
            return await asyncio.to_thread(self._commit_sync, items)
        except sqlite3.Error as exc:
            raise StoreError(f"HL7 message batch not stored in {self.path}: {exc}") from exc

    def _commit_sync(self, items: Sequence[tuple[bytes, InboundMeta]]) -> list[StoreResult]:
        out: list[StoreResult] = []
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for raw, m in items:
                    key = m.dedup_key
                    new_id = uuid7(m.received_at)
                    stored = raw if self.sealer is None else self.sealer.seal(raw, "hl7_inbound")
                    cur = db.execute(
                        "INSERT INTO hl7_inbound (id, received_at, peer, sender, control_id, message_type, status, "
                        "ack_code, reason, dedup_key, raw, sealed) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) "
                        "ON CONFLICT (dedup_key) DO NOTHING",
                        (new_id, m.received_at, m.peer, m.sender, m.control_id, m.message_type, m.status,
                         m.ack_code, m.reason, key, stored, self.sealer is not None))
                    if cur.rowcount == 1:
                        out.append(StoreResult(new_id, False, m.ack_code, m.reason))
                        continue
                    db.execute("UPDATE hl7_inbound SET duplicates = duplicates + 1 WHERE dedup_key = ?", (key,))
                    row = db.execute("SELECT id, ack_code, reason FROM hl7_inbound WHERE dedup_key = ?",
                                     (key,)).fetchone()
                    out.append(StoreResult(row[0], True, row[1], row[2]))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return out

    async def fetch_pending(self, limit: int = 100) -> list[StoredMessage]:
        """Accepted messages not processed yet, oldest first."""
        def fetch() -> list[StoredMessage]:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, raw, received_at, control_id, message_type, sealed FROM hl7_inbound "
                    "WHERE status = 'accepted' AND processed_at IS NULL ORDER BY rowid LIMIT ?", (limit,)).fetchall()
            return [StoredMessage(r[0], self._open(bytes(r[1]), bool(r[5])), r[2], r[3], r[4]) for r in rows]
        return await asyncio.to_thread(fetch)

    def _open(self, raw: bytes, sealed: bool) -> bytes:
        if not sealed:
            return raw
        if self.sealer is None:
            raise SealError(f"{self.path} holds encrypted messages but no at-rest key is configured")
        return self.sealer.open(raw, "hl7_inbound")

    async def mark_processed(self, message_id: str, error: str | None = None) -> None:
        """Record that a message was processed (``error``: why its results could not be used)."""
        def mark() -> None:
            with self._lock:
                self._db.execute("UPDATE hl7_inbound SET processed_at = ?, process_error = ? WHERE id = ?",
                                 (now_ms(), error, message_id))
        await asyncio.to_thread(mark)

    async def close(self) -> None:
        """Stop the writer and close the file."""
        await self.committer.close()
        with self._lock:
            self._db.close()
