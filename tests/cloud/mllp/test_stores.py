"""Durability and faults: group commit, a store that fails, PostgreSQL losing its connection, SQLite reopen."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import pytest

from cloud.db.engine import Database
from cloud.mllp.client import MllpSender
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.errors import StoreError
from cloud.mllp.server import ListenerConfig, MllpListener
from cloud.mllp.store import GroupCommitter, InboundMeta, StoreResult
from firmware_sim.his import lab_message, send_messages
from tests.cloud.mllp.conftest import acks, open_db, rows


async def test_group_committer_puts_concurrent_submissions_in_one_commit() -> None:
    seen: list[list[int]] = []

    async def commit(items: Sequence[int]) -> list[int]:
        seen.append(list(items))
        return [i * 10 for i in items]

    committer: GroupCommitter[int, int] = GroupCommitter(commit)
    assert await asyncio.gather(*(committer.submit(i) for i in range(50))) == [i * 10 for i in range(50)]
    assert seen == [list(range(50))]
    await committer.close()


async def test_a_failed_commit_fails_every_waiter_of_that_batch_and_the_next_one_works() -> None:
    calls = 0

    async def commit(items: Sequence[int]) -> list[int]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return list(items)

    committer: GroupCommitter[int, int] = GroupCommitter(commit)
    results = await asyncio.gather(*(committer.submit(i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, StoreError) and "disk full" in str(r) for r in results)
    assert await committer.submit(9) == 9
    await committer.close()


class FailingFirst:
    """Wraps a real store; its first ``n`` stores fail as if the database were down."""

    def __init__(self, inner: Hl7Store, n: int) -> None:
        self.inner, self.n = inner, n

    async def store(self, raw: bytes, meta: InboundMeta) -> StoreResult:
        if self.n > 0:
            self.n -= 1
            raise StoreError("database unavailable (simulated)")
        return await self.inner.store(raw, meta)


async def test_no_ack_when_the_store_fails_and_the_senders_resend_is_stored_once(sqlite_store: Hl7Store) -> None:
    flaky = FailingFirst(sqlite_store, 1)
    listener = await MllpListener(flaky, ListenerConfig(host="127.0.0.1", port=0)).start()
    async with MllpSender("127.0.0.1", listener.port, ack_timeout=5, attempts=3, retry_delay=0) as sender:
        ack = await sender.send(lab_message(1))
        assert sender.sent_frames == 2  # first attempt: connection closed without an ACK
    await listener.close()
    assert ack.code == "AA"
    assert [m.control_id for m in await sqlite_store.fetch_pending()] == ["LIS00000001"]


@pytest.mark.postgres
async def test_postgres_connection_killed_between_messages(pg_store: Hl7Store, pg_db: Database,
                                                            pg_dsn: str) -> None:
    listener = await MllpListener(pg_store, ListenerConfig(host="127.0.0.1", port=0)).start()
    async with MllpSender("127.0.0.1", listener.port, ack_timeout=5, attempts=3, retry_delay=0) as sender:
        assert (await sender.send(lab_message(1))).code == "AA"
        admin = await asyncpg.connect(pg_dsn)
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        await admin.close()
        assert killed >= 1
        assert (await sender.send(lab_message(2))).code == "AA"
        # either the store noticed the dead connection and reconnected at once (2 frames), or the
        # commit failed, nothing was acknowledged and the sender resent (3 frames): stored once either way
        assert sender.sent_frames in (2, 3)
    await listener.close()
    stored = await rows(pg_db)
    assert [r["control_id"] for r in stored] == ["LIS00000001", "LIS00000002"]


async def test_sqlite_store_survives_reopen_and_detects_duplicates(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cloud.db'}"
    db = await open_db(url)
    store = Hl7Store(db)
    async with MllpListener(store, ListenerConfig(host="127.0.0.1", port=0)) as listener:
        answers = acks(await send_messages("127.0.0.1", listener.port, [lab_message(1), lab_message(2)]))
    assert [a.code for a in answers] == ["AA", "AA"]
    await store.close()
    await db.close()
    db = await open_db(url)
    reopened = Hl7Store(db)
    async with MllpListener(reopened, ListenerConfig(host="127.0.0.1", port=0)) as listener:
        again = acks(await send_messages("127.0.0.1", listener.port, [lab_message(2)]))
    assert again[0].text == "duplicate: already received"
    pending = await reopened.fetch_pending()
    assert [m.control_id for m in pending] == ["LIS00000001", "LIS00000002"]
    await reopened.mark_processed(pending[0].id)
    assert len(await reopened.fetch_pending()) == 1
    await reopened.close()
    await db.close()
