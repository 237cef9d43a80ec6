"""What the cloud holds, read straight from its database (SQLite or PostgreSQL) for the demo."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloud.db.engine import Database
from cloud.errors import CloudError
from cloud.outbox import EVENT_TOPICS


@dataclass
class CloudCounts:
    """Counts for the progress display."""

    readings: dict[str, int] = field(default_factory=dict)  #: hub -> readings stored
    sessions: dict[str, int] = field(default_factory=dict)  #: hub -> visits stored
    outbox: dict[tuple[str, str], int] = field(default_factory=dict)  #: (topic, status) -> outbound messages
    results: int = 0  #: HIS/LIS/PACS results stored
    error: str = ""

    def pending(self, prefix: str = "") -> int:
        """Outbound messages not yet delivered (pending), for topics starting with ``prefix``."""
        return sum(n for (topic, status), n in self.outbox.items() if status == "pending" and topic.startswith(prefix))

    def by_status(self, status: str, prefix: str = "") -> int:
        """Outbound messages in ``status`` for topics starting with ``prefix``."""
        return sum(n for (topic, s), n in self.outbox.items() if s == status and topic.startswith(prefix))


class CloudReader:
    """A read-only view of the demo cloud's database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.db: Database | None = None

    async def _db(self) -> Database:
        if self.db is None:
            self.db = await Database.connect(self.url, 2)
        return self.db

    async def counts(self) -> CloudCounts:
        """Readings and sessions per hub, outbox by topic and status, results."""
        out = CloudCounts()
        try:
            db = await self._db()
            async with db.transaction() as tx:
                for r in await tx.fetch("SELECT hub_id, COUNT(*) AS n FROM readings GROUP BY hub_id"):
                    out.readings[r["hub_id"]] = int(r["n"])
                for r in await tx.fetch("SELECT hub_id, COUNT(*) AS n FROM sessions GROUP BY hub_id"):
                    out.sessions[r["hub_id"]] = int(r["n"])
                for r in await tx.fetch("SELECT topic, status, COUNT(*) AS n FROM outbox GROUP BY topic, status"):
                    if r["topic"] not in EVENT_TOPICS:  # the change feed is not outbound work
                        out.outbox[(r["topic"], r["status"])] = int(r["n"])
                out.results = int(await tx.fetchval("SELECT COUNT(*) FROM results") or 0)
        except (CloudError, OSError) as exc:
            out.error = str(exc)
        return out

    async def readings(self) -> list[dict[str, Any]]:
        """Every reading (for the reconciliation)."""
        db = await self._db()
        async with db.transaction() as tx:
            rows = await tx.fetch("SELECT hub_id, epoch, seq, uid, device_id, observations FROM readings")
        return [dict(r) for r in rows]

    async def sessions_by_source(self) -> dict[tuple[str, str], int]:
        """(hub, source) -> sessions stored."""
        db = await self._db()
        async with db.transaction() as tx:
            rows = await tx.fetch("SELECT hub_id, source, COUNT(*) AS n FROM sessions GROUP BY hub_id, source")
        return {(r["hub_id"], r["source"]): int(r["n"]) for r in rows}

    async def close(self) -> None:
        """Close the connection."""
        if self.db is not None:
            await self.db.close()
            self.db = None
