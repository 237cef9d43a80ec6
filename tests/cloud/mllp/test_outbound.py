"""Outbound vitals: outbox -> MLLP -> a HIS simulator that drops, delays and refuses.

Exactly once from the HIS's point of view: every session the outbox reports as sent is
in the HIS's accepted set once (it deduplicates by MSH-10); every dead letter carries the
reason and was never accepted.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import AsyncIterator

import asyncpg
import pytest

from cloud.mllp.client import MllpSender
from cloud.mllp.errors import AckTimeout, NegativeAck, PeerUnavailable
from cloud.mllp.outbox import DDL, OutboxWorker, enqueue_vitals, replay
from firmware_sim.his import Faults, HisReceiver, fields
from protocol import codes
from protocol.hl7.oru import VitalsReport
from protocol.model import Observation, Reading, Subject

pytestmark = pytest.mark.postgres
T0 = 1_790_000_000_000


def session_report(i: int) -> VitalsReport:
    bp = Reading(at=T0 + i * 1000, device_id="bp-1", station_id="s1", kind="blood_pressure", observations=(
        Observation(code=codes.SYSTOLIC, value=110 + i % 40, unit="mm[Hg]", flag="N"),
        Observation(code=codes.DIASTOLIC, value=70 + i % 20, unit="mm[Hg]", flag="N")))
    return VitalsReport(control_id="pending", session_id=f"session-{i}",
                        subject=Subject(national_id="11010519491231002X", name="王秀英", mrn=f"M{i:05d}"),
                        readings=(bp,), created_at=T0 + i * 1000 + 500)


@pytest.fixture
async def pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=3)
    async with pool.acquire() as conn:
        await conn.execute(DDL)
    yield pool
    await pool.close()


async def drain(worker: OutboxWorker, pool: asyncpg.Pool) -> None:
    for _ in range(500):
        await worker.run_once()
        pending = await pool.fetchval("SELECT count(*) FROM hl7_outbound WHERE state = 'pending'")
        if pending == 0:
            return
    raise AssertionError("outbox did not drain")


async def test_every_session_arrives_exactly_once_despite_faults(pool: asyncpg.Pool) -> None:
    his = HisReceiver(Faults(drop_before=0.15, drop_after=0.15, delay=0.15, delay_seconds=0.4, error=0.1, seed=11))
    port = await his.start()
    n = 30
    async with pool.acquire() as conn, conn.transaction():
        ids = [await enqueue_vitals(conn, session_report(i)) for i in range(n)]
        assert await enqueue_vitals(conn, session_report(0)) is None  # same session: not queued twice
    sender = MllpSender("127.0.0.1", port, ack_timeout=0.2, attempts=2, retry_delay=0)
    worker = OutboxWorker(pool, sender, max_attempts=12, backoff=0.0, rng=random.Random(1))
    await drain(worker, pool)
    await sender.close()
    await his.close()

    rows = {r["control_id"]: r for r in await pool.fetch("SELECT * FROM hl7_outbound")}
    assert set(rows) == set(ids)
    sent = {c for c, r in rows.items() if r["state"] == "sent"}
    dead = {c for c, r in rows.items() if r["state"] == "dead"}
    assert sent | dead == set(ids)
    assert sent == set(his.accepted)  # each accepted once: the HIS keys by control id
    sessions = [fields(m, "OBR")[2] for m in his.accepted.values()]
    assert len(sessions) == len(set(sessions))
    assert len(his.receipts) > n  # faults forced resends
    assert dead, "seed 11 makes the HIS refuse some messages"
    for c in dead:
        assert rows[c]["last_error"].startswith("AE: ") and "not registered" in rows[c]["last_error"]
        assert c in his.refused and c not in his.accepted


async def test_a_dead_letter_can_be_replayed(pool: asyncpg.Pool) -> None:
    his = HisReceiver(Faults(error=1.0))
    port = await his.start()
    async with pool.acquire() as conn:
        control_id = await enqueue_vitals(conn, session_report(1))
    assert control_id is not None
    sender = MllpSender("127.0.0.1", port, ack_timeout=2, retry_delay=0)
    worker = OutboxWorker(pool, sender, backoff=0.0)
    await drain(worker, pool)
    assert await pool.fetchval("SELECT state FROM hl7_outbound") == "dead"
    his.faults = dataclasses.replace(his.faults, error=0.0)
    async with pool.acquire() as conn:
        assert await replay(conn, control_id)
    await drain(worker, pool)
    assert await pool.fetchval("SELECT state FROM hl7_outbound") == "sent"
    assert list(his.accepted) == [control_id]
    await sender.close()
    await his.close()


async def test_no_ack_at_all_ends_in_a_dead_letter_with_the_reason(pool: asyncpg.Pool) -> None:
    his = HisReceiver(Faults(drop_before=1.0))
    port = await his.start()
    async with pool.acquire() as conn:
        await enqueue_vitals(conn, session_report(1))
    sender = MllpSender("127.0.0.1", port, ack_timeout=1, attempts=1, retry_delay=0)
    await drain(OutboxWorker(pool, sender, max_attempts=3, backoff=0.0), pool)
    row = await pool.fetchrow("SELECT state, attempts, last_error FROM hl7_outbound")
    assert (row["state"], row["attempts"]) == ("dead", 3)
    assert row["last_error"].startswith("no ACK after 3 attempts")
    assert his.accepted == {} and len(his.receipts) == 3
    await sender.close()
    await his.close()


async def test_sender_errors_are_typed(pool: asyncpg.Pool) -> None:
    his = HisReceiver(Faults(error=1.0))
    port = await his.start()
    async with pool.acquire() as conn:
        await enqueue_vitals(conn, session_report(1))
        payload = await conn.fetchval("SELECT payload FROM hl7_outbound")
    async with MllpSender("127.0.0.1", port, ack_timeout=2) as sender:
        with pytest.raises(NegativeAck) as err:
            await sender.send(payload)
    assert err.value.code == "AE" and not err.value.retryable
    await his.close()
    async with MllpSender("127.0.0.1", port, connect_timeout=1, attempts=2, retry_delay=0) as sender:
        with pytest.raises(PeerUnavailable):
            await sender.send(payload)
    silent = HisReceiver(Faults(drop_before=1.0))
    port = await silent.start()
    async with MllpSender("127.0.0.1", port, ack_timeout=1, attempts=2, retry_delay=0) as sender:
        with pytest.raises(AckTimeout):
            await sender.send(payload)
    assert silent.accepted == {} and len(silent.receipts) == 2
    await silent.close()


async def test_a_lost_ack_is_answered_by_resending_the_same_control_id(pool: asyncpg.Pool) -> None:
    his = HisReceiver(Faults(drop_after=1.0))  # records the message, then hangs up without an ACK
    port = await his.start()
    async with pool.acquire() as conn:
        control_id = await enqueue_vitals(conn, session_report(1))
        payload = await conn.fetchval("SELECT payload FROM hl7_outbound")
    async with MllpSender("127.0.0.1", port, ack_timeout=2, attempts=2, retry_delay=0) as sender:
        ack = await sender.send(payload)
        assert sender.sent_frames == 2
    assert ack.code == "AA" and his.receipts == [control_id, control_id] and list(his.accepted) == [control_id]
    await his.close()
