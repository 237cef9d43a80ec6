"""Stored HL7 messages carry national ID numbers: with the at-rest key they are encrypted."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.db.engine import Database
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.server import ListenerConfig, MllpListener
from cloud.records.crypto_at_rest import AtRestError
from firmware_sim.his import lab_message, send_messages
from tests.cloud.mllp.conftest import acks, at_rest, rows

NATIONAL_ID = b"11010519491231002X"


@pytest.mark.postgres
async def test_inbound_messages_are_sealed_in_postgres(pg_db: Database) -> None:
    store = Hl7Store(pg_db, at_rest())
    async with MllpListener(store, ListenerConfig(host="127.0.0.1", port=0)) as listener:
        assert acks(await send_messages("127.0.0.1", listener.port, [lab_message(1)]))[0].code == "AA"
    stored = await rows(pg_db)
    assert stored[0]["sealed"] and NATIONAL_ID not in bytes(stored[0]["raw"])
    assert [m.raw for m in await store.fetch_pending()] == [lab_message(1)]
    store.at_rest = at_rest()
    with pytest.raises(AtRestError, match="does not open"):
        await store.fetch_pending()
    store.at_rest = None
    with pytest.raises(AtRestError, match="no at-rest key"):
        await store.fetch_pending()
    await store.close()


async def test_inbound_messages_are_sealed_in_sqlite(sqlite_db: Database, tmp_path: Path) -> None:
    store = Hl7Store(sqlite_db, at_rest())
    async with MllpListener(store, ListenerConfig(host="127.0.0.1", port=0)) as listener:
        await send_messages("127.0.0.1", listener.port, [lab_message(1)])
    files = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("cloud.db*")))  # noqa: ASYNC240
    assert NATIONAL_ID not in files
    assert [m.raw for m in await store.fetch_pending()] == [lab_message(1)]
    await store.close()
