"""Listener fixtures over real sockets: PostgreSQL store (``pg_dsn``) or SQLite in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from cloud.mllp.pg_store import PgMessageStore
from cloud.mllp.server import ListenerConfig, MllpListener
from cloud.mllp.sqlite_store import SqliteMessageStore
from protocol.hl7.ack import Ack, parse_ack

FIXTURES = Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "hl7"
if not FIXTURES.is_dir():
    FIXTURES = Path("/work/shared/fixtures/hl7")


@pytest.fixture
async def pg_store(pg_dsn: str) -> AsyncIterator[PgMessageStore]:
    """A PostgreSQL message store on a fresh database."""
    store = await PgMessageStore.open(pg_dsn)
    yield store
    await store.close()


@pytest.fixture
async def pg_listener(pg_store: PgMessageStore) -> AsyncIterator[MllpListener]:
    """A listener on a free loopback port storing into PostgreSQL."""
    async with MllpListener(pg_store, ListenerConfig(host="127.0.0.1", port=0)) as listener:
        yield listener


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SqliteMessageStore]:
    """A SQLite message store in a temporary file."""
    store = SqliteMessageStore(tmp_path / "hl7.db")
    yield store
    await store.close()


async def rows(dsn: str, where: str = "TRUE") -> list[asyncpg.Record]:
    """Rows of hl7_inbound in arrival order."""
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(f"SELECT * FROM hl7_inbound WHERE {where} ORDER BY seq"))
    finally:
        await conn.close()


def acks(frames: list[bytes]) -> list[Ack]:
    """Parse ACK frames."""
    return [parse_ack(f) for f in frames]
