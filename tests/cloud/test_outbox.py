"""The transactional outbox on both dialects: idempotent enqueue, disjoint claims across
workers (FOR UPDATE SKIP LOCKED), backoff with jitter, dead letters with the reason, replay."""

from __future__ import annotations

import asyncio
import random

import pytest

from cloud import outbox
from cloud.config import OutboxConfig
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.errors import OutboxError
from tests.support.waiting import HANG_S


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_dsn")
    database = await Database.connect(url)
    await migrate(database)
    yield database
    await database.close()


async def test_enqueue_is_transactional_and_idempotent(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await outbox.enqueue(tx, "his.vitals", "k0", {"n": 0})
            raise RuntimeError("the data transaction fails")
    async with db.transaction() as tx:
        assert await outbox.enqueue(tx, "his.vitals", "k1", {"n": 1})
        assert not await outbox.enqueue(tx, "his.vitals", "k1", {"n": 1})
    claimed = await outbox.claim(db, "his.vitals")
    assert [(m.idempotency_key, m.payload) for m in claimed] == [("k1", {"n": 1})]


async def test_claims_are_disjoint_and_a_lease_expires(db: Database) -> None:
    async with db.transaction() as tx:
        for i in range(20):
            await outbox.enqueue(tx, "t", f"k{i}", {})
    batches = await asyncio.gather(*(outbox.claim(db, "t", limit=5) for _ in range(6)))
    ids = [m.id for b in batches for m in b]
    assert len(ids) == 20 and len(set(ids)) == 20
    assert await outbox.claim(db, "t") == []  # all leased
    expired = await outbox.claim(db, "t", lease_ms=0)
    assert expired == []
    async with db.transaction() as tx:
        await tx.execute("UPDATE outbox SET next_attempt_ms = 0")  # leases ran out: the worker died
    assert len(await outbox.claim(db, "t", limit=100)) == 20


async def test_failures_back_off_then_dead_letter_then_replay(db: Database) -> None:
    cfg = OutboxConfig(max_attempts=3, base_delay_s=1.0, max_delay_s=10.0)
    async with db.transaction() as tx:
        await outbox.enqueue(tx, "mch", "case-1", {"case": 1})
    (m,) = await outbox.claim(db, "mch")
    assert await outbox.fail(db, m.id, "HTTP 502 from platform", cfg) == "pending"
    assert await outbox.claim(db, "mch") == []  # backing off
    assert await outbox.fail(db, m.id, "HTTP 502 from platform", cfg) == "pending"
    assert await outbox.fail(db, m.id, "E104 ID number rejected", cfg) == "dead"
    async with db.transaction() as tx:
        row = await tx.fetchrow("SELECT status, attempts, last_error FROM outbox WHERE id = $1", m.id)
        assert tuple(row) == ("dead", 3, "E104 ID number rejected")
        assert (await outbox.depths(tx))[("mch", "dead")] == 1
    await outbox.replay(db, m.id, actor="admin:li")
    with pytest.raises(OutboxError):
        await outbox.replay(db, m.id, actor="admin:li")
    (again,) = await outbox.claim(db, "mch")
    assert again.attempts == 0
    await outbox.complete(db, again.id)
    async with db.transaction() as tx:
        actions = [r[0] for r in await tx.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["outbox.dead_letter", "outbox.replay"]


async def test_permanent_refusal_dead_letters_at_once_and_the_dispatcher_delivers(db: Database) -> None:
    cfg = OutboxConfig(max_attempts=5, base_delay_s=0.01, max_delay_s=0.02)
    async with db.transaction() as tx:
        for i in range(3):
            await outbox.enqueue(tx, "his", f"v{i}", {"i": i})
    delivered: list[str] = []
    two_delivered = asyncio.Event()

    async def deliver(m: outbox.Message) -> None:
        if m.payload["i"] == 1:
            raise outbox.DeliveryError("AR: PID-3 unknown", permanent=True)
        delivered.append(m.idempotency_key)
        if len(delivered) == 2:
            two_delivered.set()

    stop = asyncio.Event()
    task = asyncio.create_task(outbox.run_dispatcher(db, "his", deliver, cfg, stop, idle_s=0.01))
    await asyncio.wait_for(two_delivered.wait(), HANG_S)
    stop.set()
    await task
    async with db.transaction() as tx:
        assert (await outbox.depths(tx)) == {("his", "dead"): 1}


def test_backoff_is_exponential_capped_and_jittered() -> None:
    cfg = OutboxConfig(max_attempts=10, base_delay_s=2.0, max_delay_s=30.0)
    rng = random.Random(1)
    for attempts, ceiling in [(1, 2000), (2, 4000), (3, 8000), (5, 30000), (9, 30000)]:
        delays = {outbox.backoff_ms(attempts, cfg, rng) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays) and len(delays) > 10


async def test_a_change_feed_event_is_done_on_arrival_and_never_counts_as_waiting(db: Database) -> None:
    async with db.transaction() as tx:
        assert await outbox.record_event(tx, "visit.closed", "visit.closed/H1/S1", {"hub_id": "H1"})
        assert not await outbox.record_event(tx, "visit.closed", "visit.closed/H1/S1", {"hub_id": "H1"})
        with pytest.raises(OutboxError, match="not a change-feed topic"):
            await outbox.record_event(tx, "his.vitals", "his.vitals/H1/S1", {})
    async with db.transaction() as tx:
        assert await outbox.depths(tx) == {}
    assert await outbox.claim(db, "visit.closed") == []


async def test_migration_9_retires_change_feed_rows_an_older_cloud_left_pending(db: Database) -> None:
    async with db.transaction() as tx:  # as migrations 1-8 wrote them
        await outbox.enqueue(tx, "visit.closed", "visit.closed/H1/S1", {"hub_id": "H1"})
        await outbox.enqueue(tx, "visit.updated", "visit.updated/H1/1/7", {"hub_id": "H1"})
        await outbox.enqueue(tx, "his.vitals", "his.vitals/H1/S1", {"hub_id": "H1"})
        await tx.execute("DELETE FROM schema_migrations WHERE version = 9")
    assert await migrate(db) == ["0009 change-feed outbox rows are done on arrival"]
    async with db.transaction() as tx:
        assert await outbox.depths(tx) == {("his.vitals", "pending"): 1}


def test_the_outbound_topics_metrics_report_are_the_senders_topics() -> None:
    from cloud.integration.vitals import TOPIC
    from cloud.mch.followups import FOLLOWUP_TOPIC
    from cloud.mch.store import UPLOAD_TOPIC

    assert outbox.OUTBOUND_TOPICS == (TOPIC, UPLOAD_TOPIC, FOLLOWUP_TOPIC)
    assert not set(outbox.OUTBOUND_TOPICS) & set(outbox.EVENT_TOPICS)
