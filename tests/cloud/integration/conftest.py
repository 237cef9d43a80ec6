"""A migrated cloud database (SQLite and PostgreSQL) and HL7 helpers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.integration.inbound import Hl7Processor
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.store import InboundMeta
from cloud.records.crypto_at_rest import AtRest
from protocol.hl7.codemap import CodeMap
from protocol.hl7.message import parse_header

NID = "11010519491231002X"
CODES = CodeMap.from_config({"L": {"HPV16": "59263-4", "TCT": "10524-7"}})


@dataclass
class Env:
    """Database, keys, store and processor of one test."""

    db: Database
    at_rest: AtRest
    store: Hl7Store
    processor: Hl7Processor

    async def receive(self, *messages: bytes) -> None:
        """Store messages as the listener would (accepted), then process everything pending."""
        for i, raw in enumerate(messages):
            h = parse_header(raw)
            await self.store.store(raw, InboundMeta(received_at=1_790_000_000_000 + i, peer="test", status="accepted",
                                                    ack_code="AA", sender=h.sender, control_id=h.control_id,
                                                    message_type=f"{h.message_type}^{h.trigger_event}"))
        while await self.processor.run_once():
            pass

    async def q(self, sql: str, *args: Any) -> list[Any]:
        """Rows of a query."""
        async with self.db.transaction() as tx:
            return await tx.fetch(sql, *args)


@pytest.fixture(params=["sqlite", "postgres"])
async def env(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Env]:
    """The same test on SQLite and on PostgreSQL."""
    url = f"sqlite:///{tmp_path / 'cloud.db'}" if request.param == "sqlite" else str(
        request.getfixturevalue("pg_dsn"))
    db = await Database.connect(url, 4)
    await migrate(db)
    keys = AtRest(os.urandom(32), os.urandom(32))
    store = Hl7Store(db, keys)
    yield Env(db, keys, store, Hl7Processor(db, store, keys, CODES))
    await store.close()
    await db.close()


def without_national_id(raw: bytes) -> bytes:
    """The same message with the national ID removed from PID-3."""
    return raw.replace(f"~{NID}^^^^NNCHN".encode(), b"")


def with_national_id(raw: bytes, nid: str = NID) -> bytes:
    """An ADT whose PID-3 also carries the national ID."""
    return raw.replace(b"^^^HOSP^MR|", f"^^^HOSP^MR~{nid}^^^^NNCHN|".encode(), 1)
