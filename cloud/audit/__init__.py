"""The audit log: security-relevant events (refused batches, duplicates and replays,
registry changes, merges, dead-letter replays), and :class:`RefusalTally`, which audits
refusals of unauthenticated requests as aggregated rows.

Entries never hold patient data: ``detail`` carries ids, counts and reason codes only.
:func:`write` runs inside the caller's transaction, so an entry exists exactly when the
change it describes was committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import msgspec

from cloud.db.engine import Database, Tx
from cloud.errors import DatabaseError
from protocol.ids import now_ms

log = logging.getLogger("mchub.cloud.audit")
_INSERT = ("INSERT INTO audit_log (at_ms, actor, action, outcome, hub_id, subject_id, reason, detail, target) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")


async def write(tx: Tx, *, actor: str, action: str, outcome: str, hub_id: str | None = None,
                subject_id: int | None = None, reason: str | None = None,
                detail: dict[str, object] | None = None, target: str | None = None,
                at_ms: int | None = None) -> None:
    """Append one entry (in the caller's transaction); ``target`` names what was acted on (user, site, token)."""
    await tx.execute(_INSERT, now_ms() if at_ms is None else at_ms, actor, action, outcome, hub_id, subject_id,
                     reason, msgspec.json.encode(detail or {}).decode(), target)


#: refusal statuses the HTTP tally counts (404/405 too: a scanner's flood is a refusal as well)
REFUSAL_STATUSES = frozenset({400, 401, 403, 404, 405, 411, 413, 429, 431, 503})
OTHER_SOURCES = "(other sources)"  #: the source of keys past ``max_keys`` in one window
OTHER_ROUTES = "(other routes)"  #: ... and their route


@dataclass
class _Count:
    status: int
    count: int
    first_ms: int
    last_ms: int


class RefusalTally:
    """Refusals of unauthenticated requests, counted in memory and written as aggregated
    audit rows: at most one row per (source, route, reason) per window, so a flood cannot
    grow the append-only audit log without bound.

    One per worker process (or listener). :meth:`note` is cheap and synchronous (call it
    for every refusal); :meth:`run` flushes every ``window_s`` and once more when
    stopped. Each row is an ordinary ``audit_log`` entry (so the hash chain of
    :mod:`cloud.audit.chain` seals it like any other): ``action`` ``refusal.tally``,
    ``outcome`` ``refused``, ``actor`` the source address, ``target`` the route,
    ``reason`` the reason code, ``detail`` ``{source, route, reason, status, count,
    first_ms, last_ms, window_s}``, ``hub_id`` the hub a refused batch claimed (if any).
    Past ``max_keys`` distinct keys in one window, new ones are counted under
    :data:`OTHER_SOURCES` and :data:`OTHER_ROUTES` by reason, so one window writes at most
    ``max_keys`` + (number of reason codes) rows. A crash loses at most one window of counts::

        tally = RefusalTally(window_s=60)
        tally.note("203.0.113.9", "mllp", "not_allowed", 403)   # the MLLP allow-list
        tally.note("198.51.100.4", "/dicomweb/studies", "unauthenticated", 401)
        await tally.run(db, stop)                               # a task of the process
    """

    def __init__(self, *, window_s: float = 60.0, max_keys: int = 1000) -> None:
        self.window_s, self.max_keys = window_s, max_keys
        self._counts: dict[tuple[str, str, str, str], _Count] = {}
        self._wake = asyncio.Event()

    def note(self, source: str, route: str, reason: str, status: int = 0, at_ms: int | None = None,
             hub_id: str | None = None) -> None:
        """Count one refusal (never blocks, never raises); ``hub_id``: the hub a refused batch
        claimed to come from (unproven, but what an investigation of a lost hub looks for)."""
        at = now_ms() if at_ms is None else at_ms
        key = (source[:64], route[:200], reason[:64], (hub_id or "")[:64])
        if key not in self._counts and len(self._counts) >= self.max_keys:
            key = (OTHER_SOURCES, OTHER_ROUTES, key[2], "")  # reasons are codes: bounded
        c = self._counts.get(key)
        if c is None:
            self._counts[key] = _Count(status, 1, at, at)
        else:
            c.count += 1
            c.last_ms = at

    def pending(self) -> int:
        """Refusals counted and not yet written."""
        return sum(c.count for c in self._counts.values())

    async def flush(self, db: Database) -> int:
        """Write one row per key counted since the last flush; returns the number of rows.

        Counts that could not be written (a database error, or the flush cancelled by a stop
        while it wrote) are kept for the next flush, merged with what came since (still bounded)."""
        counts, self._counts = self._counts, {}
        if not counts:
            return 0
        try:
            async with db.transaction() as tx:
                for (source, route, reason, hub), c in counts.items():
                    await write(tx, actor=source, action="refusal.tally", outcome="refused", reason=reason,
                                target=route, at_ms=c.last_ms, hub_id=hub or None,
                                detail={"source": source, "route": route, "reason": reason, "status": c.status,
                                        "count": c.count, "first_ms": c.first_ms, "last_ms": c.last_ms,
                                        "window_s": self.window_s})
        except DatabaseError as exc:
            log.warning("could not write %d refusal tally rows: %s; retrying next window", len(counts), exc)
            self._keep(counts)
            return 0
        except BaseException:  # cancelled mid-write: the transaction rolled back; the final flush writes them
            self._keep(counts)
            raise
        return len(counts)

    def _keep(self, counts: dict[tuple[str, str, str, str], _Count]) -> None:
        for key, c in counts.items():
            mine = self._counts.setdefault(key, _Count(c.status, 0, c.first_ms, c.last_ms))
            mine.count += c.count
            mine.first_ms = min(mine.first_ms, c.first_ms)

    async def run(self, db: Database, stop: asyncio.Event) -> None:
        """Flush every ``window_s`` until ``stop`` is set (then call :meth:`flush` once more
        before closing the database, so a clean stop loses nothing)."""
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.window_s)
            await self.flush(db)
