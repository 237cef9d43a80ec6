"""The migrations (:mod:`cloud.db.migrations`) are the one source of the schema: they apply
once on both dialects, and SQLite and PostgreSQL end with the same tables and columns."""

from __future__ import annotations

import pytest

from cloud.db.engine import Database, epoch_from_db, epoch_to_db
from cloud.db.migrations import MIGRATIONS, PartitionCache, migrate


async def _schema(db: Database) -> dict[str, set[str]]:
    """Every table of the database and its columns (PostgreSQL: readings' monthly partitions
    left out, they repeat the parent; SQLite: its own bookkeeping tables left out)."""
    async with db.transaction() as tx:
        if tx.dialect == "sqlite":
            tables = [r["name"] for r in await tx.fetch(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
            return {t: {r["name"] for r in await tx.fetch(f"PRAGMA table_info({t})")} for t in tables}
        rows = await tx.fetch(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c "
            "JOIN pg_class k ON k.relname = c.table_name AND k.relnamespace = 'public'::regnamespace "
            "WHERE c.table_schema = 'public' AND k.relkind IN ('r', 'p') AND NOT k.relispartition")
    schema: dict[str, set[str]] = {}
    for r in rows:
        schema.setdefault(r["table_name"], set()).add(r["column_name"])
    return schema


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'c.db'}"
    return str(request.getfixturevalue("pg_dsn"))


async def test_migrations_apply_once(db_url: str) -> None:
    db = await Database.connect(db_url)
    applied = await migrate(db)  # 2 and 8 are empty on SQLite
    assert applied[:2] == ["0001 initial schema", "0002 ingest function"]
    assert applied == [f"{v:04d} {name}" for v, name, _, _ in MIGRATIONS]
    assert await migrate(db) == []
    await db.close()


@pytest.mark.postgres
async def test_both_dialects_end_with_the_same_tables_and_columns(tmp_path, pg_dsn: str) -> None:  # type: ignore[no-untyped-def]
    """The SQL of every module runs on both dialects, so it may use any column of either:
    a column added to one dialect's migration only is caught here."""
    schemas = []
    for url in (f"sqlite:///{tmp_path / 'c.db'}", pg_dsn):
        db = await Database.connect(url)
        await migrate(db)
        schemas.append(await _schema(db))
        await db.close()
    sqlite, postgres = schemas
    assert {"hubs", "readings", "sessions", "subjects", "outbox", "audit_log", "users"} <= set(sqlite)
    assert sorted(set(sqlite) ^ set(postgres)) == []
    assert {t: sorted(sqlite[t] ^ postgres[t]) for t in sqlite if sqlite[t] != postgres[t]} == {}


@pytest.mark.postgres
async def test_readings_are_partitioned_by_month_on_postgres(pg_dsn: str) -> None:
    db = await Database.connect(pg_dsn)
    await migrate(db)
    cache = PartitionCache()
    jan, feb = 1_704_067_200_000, 1_706_745_600_000  # 2024-01-01, 2024-02-01 UTC
    await cache.ensure(db, [jan, jan + 1, feb - 1, feb])
    await PartitionCache().ensure(db, [feb])  # another worker: no error
    async with db.transaction() as tx:
        parts = [r[0] for r in await tx.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'readings' ORDER BY 1")]
    assert parts == ["readings_2024_01", "readings_2024_02"]
    await db.close()


def test_unsigned_epochs_round_trip_through_signed_bigint() -> None:
    for epoch in (1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1):
        assert -(1 << 63) <= epoch_to_db(epoch) < 1 << 63
        assert epoch_from_db(epoch_to_db(epoch)) == epoch
