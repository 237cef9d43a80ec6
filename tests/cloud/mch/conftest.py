"""Fixtures of the MCH cloud tests: a migrated database on both dialects, a subject, a site."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from cloud import outbox
from cloud.db.engine import Database
from cloud.db.migrations import PartitionCache, migrate
from protocol.ids import now_ms


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty cloud database (SQLite and PostgreSQL)."""
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_dsn")
    database = await Database.connect(url)
    await migrate(database)
    yield database
    await database.close()


async def add_subject(db: Database, sex: str = "2", birth_date: str | None = "1980-05-01") -> int:
    """A subject row (no identifiers needed by the MCH code); returns its id."""
    async with db.transaction() as tx:
        return int(await tx.fetchval("INSERT INTO subjects (sex, birth_date, created_ms, updated_ms) "
                                     "VALUES ($1, $2, $3, $4) RETURNING id", sex, birth_date, now_ms(), now_ms()))


Observations = list[dict[str, object]]
_seq = itertools.count(1000)


async def add_visit(db: Database, subject_id: int, session_id: str, opened_ms: int, readings: list[Observations],
                    *, pregnant_weeks: int | None = None, hub_id: str = "H1", site_id: str = "S1") -> None:
    """A closed hub visit as ingest leaves it: session, readings, and its ``visit.closed`` outbox row."""
    at = [opened_ms + 1000 * (i + 1) for i in range(len(readings))]
    await PartitionCache().ensure(db, at or [opened_ms])
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO sites (site_id, name, created_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                         site_id, f"site {site_id}", opened_ms)
        await tx.execute("INSERT INTO hubs (hub_id, site_id, created_ms) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                         hub_id, site_id, opened_ms)
        await tx.execute("INSERT INTO sessions (hub_id, session_id, epoch, seq, station_id, subject_id, "
                         "pregnant_weeks, opened_ms, closed_ms) VALUES ($1, $2, 1, 1, 'ST1', $3, $4, $5, $6)",
                         hub_id, session_id, subject_id, pregnant_weeks, opened_ms, opened_ms + 60_000)
        for i, obs in enumerate(readings):
            await tx.execute(
                "INSERT INTO readings (hub_id, epoch, seq, at_ms, uid, device_id, station_id, kind, session_id, "
                "observations, status, raw, received_ms) VALUES ($1, 1, $2, $3, $4, 'D1', 'ST1', 'k', $5, $6, '[]', "
                "$7, $8)", hub_id, next(_seq), at[i], str(uuid.uuid4()),
                session_id, msgspec.json.encode(obs).decode(), b"raw", at[i])
        await outbox.enqueue(tx, "visit.closed", f"visit.closed/{hub_id}/{session_id}",
                             {"hub_id": hub_id, "session_id": session_id})


async def add_result(db: Database, subject_id: int | None, source: str, kind: str, code: str, value: str,
                     observed_ms: int, payload: dict[str, object] | None = None) -> int:
    """A ``results`` row in the shape the HL7 and DICOM intakes store (docs/mch.md)."""
    async with db.transaction() as tx:
        return int(await tx.fetchval(
            "INSERT INTO results (subject_id, source, source_key, kind, code, value, observed_ms, payload, "
            "created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id", subject_id, source,
            f"{source}:{kind}:{code}:{observed_ms}:{value}", kind, code, value, observed_ms,
            msgspec.json.encode(payload or {}).decode(), now_ms()))
