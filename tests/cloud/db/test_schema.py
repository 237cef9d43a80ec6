"""Migrations apply once on both dialects and every tortoise model field has its column."""

from __future__ import annotations

import pytest
from tortoise import Tortoise

from cloud.db.engine import Database, epoch_from_db, epoch_to_db
from cloud.db.migrations import MIGRATIONS, PartitionCache, migrate
from cloud.db.orm import orm


async def _columns(db: Database, table: str) -> set[str]:
    async with db.transaction() as tx:
        if tx.dialect == "sqlite":
            return {r["name"] for r in await tx.fetch(f"PRAGMA table_info({table})")}
        return {r["column_name"] for r in await tx.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = $1", table)}


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'c.db'}"
    return str(request.getfixturevalue("pg_dsn"))


async def test_migrations_apply_once_and_models_match_the_schema(db_url: str) -> None:
    db = await Database.connect(db_url)
    applied = await migrate(db)  # 2 and 8 are empty on SQLite
    assert applied[:2] == ["0001 initial schema", "0002 ingest function"]
    assert applied == [f"{v:04d} {name}" for v, name, _, _ in MIGRATIONS]
    assert await migrate(db) == []
    async with orm(db_url):
        models = list(Tortoise.apps["models"].values())
        assert len(models) == 17
        for model in models:
            columns = await _columns(db, model._meta.db_table)
            wanted = {f.source_field or name for name, f in model._meta.fields_map.items()}
            assert wanted <= columns, (model.__name__, wanted - columns)
    await db.close()


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
