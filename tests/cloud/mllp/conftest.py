"""Listener fixtures over real sockets: the HL7 store on the cloud database (PostgreSQL or SQLite)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.server import ListenerConfig, MllpListener
from cloud.records.crypto_at_rest import AtRest
from protocol.hl7.ack import Ack, parse_ack

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7"  #: third-party messages, see SOURCES.md


def at_rest() -> AtRest:
    """Fresh at-rest keys."""
    return AtRest(os.urandom(32), os.urandom(32))


async def open_db(url: str) -> Database:
    """A migrated cloud database."""
    db = await Database.connect(url, 4)
    await migrate(db)
    return db


@pytest.fixture
async def pg_db(pg_dsn: str) -> AsyncIterator[Database]:
    """The cloud database on a fresh PostgreSQL database."""
    db = await open_db(pg_dsn)
    yield db
    await db.close()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """The cloud database in a temporary SQLite file."""
    db = await open_db(f"sqlite:///{tmp_path / 'cloud.db'}")
    yield db
    await db.close()


@pytest.fixture
async def pg_store(pg_db: Database) -> AsyncIterator[Hl7Store]:
    """The HL7 store on PostgreSQL (messages in the clear, so tests can compare bytes)."""
    store = Hl7Store(pg_db)
    yield store
    await store.close()


@pytest.fixture
async def sqlite_store(sqlite_db: Database) -> AsyncIterator[Hl7Store]:
    """The HL7 store on SQLite."""
    store = Hl7Store(sqlite_db)
    yield store
    await store.close()


@pytest.fixture
async def pg_listener(pg_store: Hl7Store) -> AsyncIterator[MllpListener]:
    """A listener on a free loopback port storing into PostgreSQL."""
    async with MllpListener(pg_store, ListenerConfig(host="127.0.0.1", port=0)) as listener:
        yield listener


async def rows(db: Database, where: str = "TRUE") -> list[Any]:
    """Rows of hl7_inbound in arrival order."""
    async with db.transaction() as tx:
        return await tx.fetch(f"SELECT * FROM hl7_inbound WHERE {where} ORDER BY id")


def acks(frames: list[bytes]) -> list[Ack]:
    """Parse ACK frames."""
    return [parse_ack(f) for f in frames]
