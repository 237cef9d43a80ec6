"""Stored HL7 messages carry national ID numbers: with an at-rest key they are encrypted."""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
import pytest

from cloud.mllp.client import MllpSender
from cloud.mllp.outbox import DDL, OutboxWorker, enqueue_vitals
from cloud.mllp.pg_store import PgMessageStore
from cloud.mllp.sealing import AesGcmSealer, SealError
from cloud.mllp.server import ListenerConfig, MllpListener
from cloud.mllp.sqlite_store import SqliteMessageStore
from firmware_sim.his import Faults, HisReceiver, lab_message, send_messages
from tests.cloud.mllp.conftest import acks, rows
from tests.cloud.mllp.test_outbound import session_report

NATIONAL_ID = b"11010519491231002X"


@pytest.mark.postgres
async def test_inbound_messages_are_sealed_in_postgres(pg_dsn: str) -> None:
    sealer = AesGcmSealer(os.urandom(32))
    store = await PgMessageStore.open(pg_dsn, sealer=sealer)
    async with MllpListener(store, ListenerConfig(host="127.0.0.1", port=0)) as listener:
        assert acks(await send_messages("127.0.0.1", listener.port, [lab_message(1)]))[0].code == "AA"
    stored = await rows(pg_dsn)
    assert stored[0]["sealed"] and NATIONAL_ID not in bytes(stored[0]["raw"])
    assert [m.raw for m in await store.fetch_pending()] == [lab_message(1)]
    store.sealer = AesGcmSealer(os.urandom(32))
    with pytest.raises(SealError, match="does not open"):
        await store.fetch_pending()
    await store.close()


async def test_inbound_messages_are_sealed_in_sqlite(tmp_path: Path) -> None:
    store = SqliteMessageStore(tmp_path / "hl7.db", sealer=AesGcmSealer(os.urandom(32)))
    async with MllpListener(store, ListenerConfig(host="127.0.0.1", port=0)) as listener:
        await send_messages("127.0.0.1", listener.port, [lab_message(1)])
    assert NATIONAL_ID not in (tmp_path / "hl7.db").read_bytes() + (tmp_path / "hl7.db-wal").read_bytes()
    assert [m.raw for m in await store.fetch_pending()] == [lab_message(1)]
    await store.close()


@pytest.mark.postgres
async def test_outbound_messages_are_sealed_and_delivered(pg_dsn: str) -> None:
    sealer = AesGcmSealer(os.urandom(32))
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    await pool.execute(DDL)
    async with pool.acquire() as conn:
        await enqueue_vitals(conn, session_report(1), sealer=sealer)
    assert NATIONAL_ID not in bytes(await pool.fetchval("SELECT payload FROM hl7_outbound"))
    his = HisReceiver(Faults())
    port = await his.start()
    async with MllpSender("127.0.0.1", port, ack_timeout=5) as sender:
        assert await OutboxWorker(pool, sender, sealer=sealer).run_once() == 1
    assert NATIONAL_ID in next(iter(his.accepted.values()))
    await his.close()
    await pool.close()


def test_key_length_is_checked() -> None:
    with pytest.raises(SealError, match="32 bytes"):
        AesGcmSealer(b"short")
