"""SQLite and PostgreSQL errors reach callers as the same project types (issue 19, finding 7).

Each broken rule is provoked on both dialects through :class:`cloud.db.engine.Database`, and
the error must be the same :class:`cloud.errors.IntegrityError` subclass, never a
``sqlite3`` or ``asyncpg`` type; a rule found only at COMMIT (a deferred foreign key) maps
the same way and leaves the database usable.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from cloud.db.engine import Database
from cloud.errors import (
    CheckViolation,
    DatabaseError,
    ForeignKeyViolation,
    IntegrityError,
    NotNullViolation,
    RuleViolation,
    UniqueViolation,
)

_SCHEMA = [
    "CREATE TABLE err_parent (id INTEGER PRIMARY KEY)",
    "CREATE TABLE err_child (k INTEGER UNIQUE, v INTEGER NOT NULL DEFAULT 0 CHECK (v >= 0),"
    " parent INTEGER REFERENCES err_parent (id))",
    "CREATE TABLE err_late (parent INTEGER REFERENCES err_parent (id) DEFERRABLE INITIALLY DEFERRED)",
    "INSERT INTO err_child (k, v) VALUES (1, 1)",
]
_TRIGGER = {
    "sqlite": ["CREATE TRIGGER err_keep BEFORE DELETE ON err_child BEGIN SELECT RAISE(ABORT, 'append-only'); END"],
    "postgres": ["CREATE FUNCTION err_keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                 "RAISE EXCEPTION 'append-only'; END $$",
                 "CREATE TRIGGER err_keep BEFORE DELETE ON err_child FOR EACH ROW EXECUTE FUNCTION err_keep()"],
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else str(request.getfixturevalue("pg_dsn"))
    database = await Database.connect(url, 2)
    async with database.transaction() as tx:
        for sql in [*_SCHEMA, *_TRIGGER[database.dialect]]:
            await tx.execute(sql)
    yield database
    await database.close()


@pytest.mark.parametrize(("sql", "ours"), [
    ("INSERT INTO err_child (k, v) VALUES (1, 2)", UniqueViolation),
    ("INSERT INTO err_child (k, v) VALUES (2, NULL)", NotNullViolation),
    ("INSERT INTO err_child (k, v) VALUES (3, -1)", CheckViolation),
    ("INSERT INTO err_child (k, v, parent) VALUES (4, 1, 99)", ForeignKeyViolation),
    ("DELETE FROM err_child", RuleViolation),
])
async def test_a_broken_rule_is_the_same_project_error_on_both_dialects(
        db: Database, sql: str, ours: type[IntegrityError]) -> None:
    with pytest.raises(ours) as err:
        async with db.transaction() as tx:
            await tx.execute(sql)
    assert not isinstance(err.value, sqlite3.Error | asyncpg.PostgresError)
    assert isinstance(err.value.__cause__, sqlite3.Error | asyncpg.PostgresError)  # the driver's detail kept
    assert [tuple(r) for r in await db.fetch("SELECT k, v FROM err_child ORDER BY k")] == [(1, 1)]


async def test_a_rule_found_at_commit_maps_alike_and_the_database_stays_usable(db: Database) -> None:
    with pytest.raises(ForeignKeyViolation):
        async with db.transaction() as tx:
            if tx.dialect == "sqlite":
                await tx.execute("PRAGMA defer_foreign_keys = ON")
            await tx.execute("INSERT INTO err_late (parent) VALUES (42)")
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO err_parent (id) VALUES (42)")
        await tx.execute("INSERT INTO err_late (parent) VALUES (42)")
    assert [tuple(r) for r in await db.fetch("SELECT parent FROM err_late")] == [(42,)]


async def test_other_errors_are_database_errors_not_integrity_errors(db: Database) -> None:
    with pytest.raises(DatabaseError) as err:
        await db.fetch("SELECT nothing FROM no_such_table")
    assert not isinstance(err.value, IntegrityError | sqlite3.Error | asyncpg.PostgresError)
