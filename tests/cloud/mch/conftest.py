"""Fixtures of the MCH cloud tests: a migrated database on both dialects, a subject, a site."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cloud.db.engine import Database
from cloud.db.migrations import migrate
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
