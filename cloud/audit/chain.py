"""Sealing, verifying and pruning the cloud's hash-chained audit log (migration 7).

Writers (:mod:`cloud.audit`, the ORM, the ingest function inside PostgreSQL) insert plain
rows. :func:`seal` — run every ``[audit] seal_interval_s`` by each worker, one at a time
under a row lock on ``audit_chain`` — links every committed, unsealed row, in ``id``
order, into one chain of :class:`protocol.audit.AuditEntry`: ``chain_seq``, ``prev_hash``
and ``hash`` are written once and the triggers refuse any later change.

:func:`verify` re-reads the chain from the retention checkpoint to the head and names the
first entry that was modified, deleted or reordered. :func:`prune` drops entries older
than ``[audit] retention_days`` by moving the checkpoint forward first (first retained
entry's seq and ``prev``), so what remains still verifies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from cloud import audit
from cloud.db.engine import Database, Tx
from protocol.audit import AuditEntry, entry_hash, verify_chain
from protocol.ids import now_ms

log = logging.getLogger("mchub.cloud.audit")
DAY_MS = 86_400_000
_PAGE = 2000
_SELECT = ("SELECT id, at_ms, actor, action, outcome, hub_id, subject_id, reason, detail, target, chain_seq, "
           "prev_hash, hash ")
_UNSEALED = _SELECT + "FROM audit_log WHERE hash IS NULL ORDER BY id LIMIT $1"
_CHAIN_PAGE = _SELECT + "FROM audit_log WHERE chain_seq > $1 ORDER BY chain_seq LIMIT $2"
_HEAD = "SELECT head_seq, head_hash, anchor_seq, anchor_hash, pruned_ms FROM audit_chain WHERE id = 1"


def entry_of(row: Any, seq: int | None = None, prev: str | None = None) -> AuditEntry:
    """The :class:`AuditEntry` a stored row stands for (every column is covered by the hash)."""
    return AuditEntry(
        seq=int(seq if seq is not None else row["chain_seq"]), at_ms=int(row["at_ms"]), actor=row["actor"],
        action=row["action"], target=row["target"] or "",
        detail={"id": str(row["id"]), "outcome": row["outcome"], "reason": row["reason"] or "",
                "hub_id": row["hub_id"] or "",
                "subject_id": "" if row["subject_id"] is None else str(row["subject_id"]),
                "detail": row["detail"]},
        prev=prev if prev is not None else (row["prev_hash"] or ""), hash=(row["hash"] or "") if seq is None else "")


async def _head(tx: Tx, lock: bool) -> Any:
    return await tx.fetchrow(_HEAD + " FOR UPDATE" if lock and tx.dialect == "postgres" else _HEAD)


async def seal(db: Database, limit: int = _PAGE) -> int:
    """Chain up to ``limit`` unsealed rows; returns how many were sealed."""
    async with db.transaction() as tx:
        head = await _head(tx, lock=True)
        rows = await tx.fetch(_UNSEALED, limit)
        seq, prev = int(head["head_seq"]), head["head_hash"]
        updates = []
        for row in rows:
            seq += 1
            entry = entry_of(row, seq=seq, prev=prev)
            prev = entry_hash(entry)
            updates.append((seq, entry.prev, prev, row["id"]))
        if updates:
            await tx.executemany("UPDATE audit_log SET chain_seq = $1, prev_hash = $2, hash = $3 WHERE id = $4",
                                 updates)
            await tx.execute("UPDATE audit_chain SET head_seq = $1, head_hash = $2, sealed_ms = $3 WHERE id = 1",
                             seq, prev, now_ms())
    return len(updates)


async def seal_all(db: Database) -> int:
    """Seal until nothing is left; returns the count."""
    total = 0
    while n := await seal(db):
        total += n
    return total


@dataclass
class Verdict:
    """Result of :func:`verify`."""

    ok: bool
    entries: int
    first_seq: int
    head_seq: int
    head_hash: str
    unsealed: int
    problem: str = ""
    broken_seq: int | None = None
    broken_id: int | None = None

    def describe(self) -> str:
        """One line for an auditor."""
        if self.ok:
            return (f"audit log intact: {self.entries} entries, seq {self.first_seq}..{self.head_seq}, "
                    f"head {self.head_hash}; {self.unsealed} not yet sealed")
        where = f" at seq {self.broken_seq}" if self.broken_seq is not None else ""
        row = f" (row id {self.broken_id})" if self.broken_id is not None else ""
        return f"AUDIT LOG BROKEN{where}{row}: {self.problem}"


async def verify(db: Database) -> Verdict:
    """Check the whole retained chain against the checkpoint and the head."""
    async with db.transaction() as tx:
        head = await _head(tx, lock=False)
        unsealed = int(await tx.fetchval("SELECT count(*) FROM audit_log WHERE hash IS NULL"))
        anchor_seq, expected_prev = int(head["anchor_seq"]), head["anchor_hash"]
        verdict = Verdict(True, 0, anchor_seq, int(head["head_seq"]), head["head_hash"], unsealed)
        last_seq = anchor_seq - 1
        while True:
            rows = await tx.fetch(_CHAIN_PAGE, last_seq, _PAGE)
            if not rows:
                break
            entries = [entry_of(r) for r in rows]
            if entries[0].seq != last_seq + 1:
                return _broken(verdict, last_seq + 1, None, f"entry {last_seq + 1} is missing (deleted)")
            bad = verify_chain(entries, anchor=expected_prev)
            if bad is not None:
                e, r = entries[bad], rows[bad]
                if bad and e.seq != entries[bad - 1].seq + 1:
                    return _broken(verdict, entries[bad - 1].seq + 1, None,
                                   f"entry {entries[bad - 1].seq + 1} is missing (deleted)")
                problem = ("its content does not match its hash (modified)" if e.hash != entry_hash(e)
                           else "it does not link to the entry before it (an entry was removed or reordered)")
                return _broken(verdict, e.seq, int(r["id"]), problem)
            verdict.entries += len(entries)
            last_seq, expected_prev = entries[-1].seq, entries[-1].hash
        if last_seq != verdict.head_seq or expected_prev != verdict.head_hash:
            return _broken(verdict, last_seq + 1, None, f"the chain ends at seq {last_seq} but the recorded head is "
                                                        f"seq {verdict.head_seq}: entries at the end were deleted")
    return verdict


def _broken(v: Verdict, seq: int, row_id: int | None, problem: str) -> Verdict:
    v.ok, v.broken_seq, v.broken_id, v.problem = False, seq, row_id, problem
    return v


async def prune(db: Database, retention_days: int, now: int | None = None) -> int:
    """Delete sealed entries older than the retention period, keeping the chain verifiable.

    The checkpoint moves to the first entry that is kept (all entries before it are older
    than the cutoff); returns how many entries were deleted. The prune is itself audited.
    """
    cutoff = (now if now is not None else now_ms()) - retention_days * DAY_MS
    async with db.transaction() as tx:
        head = await _head(tx, lock=True)
        young = await tx.fetchval("SELECT min(chain_seq) FROM audit_log WHERE chain_seq IS NOT NULL AND at_ms >= $1",
                                  cutoff)
        keep_from = int(young) if young is not None else int(head["head_seq"]) + 1
        if keep_from <= int(head["anchor_seq"]):
            return 0
        if keep_from <= int(head["head_seq"]):
            anchor_hash = await tx.fetchval("SELECT prev_hash FROM audit_log WHERE chain_seq = $1", keep_from)
        else:
            anchor_hash = head["head_hash"]
        await tx.execute("UPDATE audit_chain SET anchor_seq = $1, anchor_hash = $2, pruned_ms = $3 WHERE id = 1",
                         keep_from, anchor_hash, now_ms())
        deleted = await tx.execute("DELETE FROM audit_log WHERE chain_seq < $1", keep_from)
        await audit.write(tx, actor="system", action="audit.prune", outcome="ok",
                          detail={"deleted": deleted, "anchor_seq": keep_from, "retention_days": retention_days})
    log.info("audit log pruned: %d entries older than %d days; the chain now starts at seq %d",
             deleted, retention_days, keep_from)
    return deleted


async def run(db: Database, seal_interval_s: float, retention_days: int, prune_interval_s: float,
              stop: asyncio.Event) -> None:
    """Background task of every worker: seal continuously, prune now and then."""
    loop = asyncio.get_running_loop()
    next_prune = loop.time() + min(prune_interval_s, 60.0)
    while not stop.is_set():
        try:
            await seal_all(db)
            if loop.time() >= next_prune:
                next_prune = loop.time() + prune_interval_s
                await prune(db, retention_days)
        except Exception as exc:  # the task must outlive a database outage; it retries next round
            log.warning("audit sealing postponed: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seal_interval_s)
