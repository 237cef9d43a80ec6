"""Crash and scale-out: a listener killed with SIGKILL mid-stream loses nothing it acknowledged;
two listeners (two cloud workers) on one PostgreSQL detect each other's duplicates; two outbox
workers deliver every message once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import asyncpg
import pytest

from cloud.mllp.client import MllpSender
from cloud.mllp.errors import SendError
from cloud.mllp.outbox import DDL, OutboxWorker, enqueue_vitals
from cloud.mllp.pg_store import PgMessageStore
from cloud.mllp.server import ListenerConfig, MllpListener
from firmware_sim.his import Faults, HisReceiver, lab_message, send_messages
from tests.cloud.mllp.conftest import acks, rows
from tests.cloud.mllp.test_outbound import session_report
from tests.support.services import free_port, wait_for_port

pytestmark = pytest.mark.postgres


def start_listener(dsn: str, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "cloud.mllp", "--host", "127.0.0.1", "--port", str(port),
                             "--dsn", dsn], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, proc=proc)
    return proc


async def test_sigkill_mid_stream_loses_no_acknowledged_message(pg_dsn: str) -> None:
    await (await PgMessageStore.open(pg_dsn)).close()  # create the table
    port = free_port()
    proc = start_listener(pg_dsn, port)
    acked: list[str] = []
    up, enough = asyncio.Event(), asyncio.Event()
    up.set()

    async def sender(lane: int) -> None:
        s = MllpSender("127.0.0.1", port, ack_timeout=3, connect_timeout=1, attempts=1, retry_delay=0)
        for message in [lab_message(lane * 1000 + i) for i in range(20)]:
            while True:
                await up.wait()
                try:
                    acked.append((await s.send(message)).control_id)
                    if len(acked) >= 30:
                        enough.set()
                    break
                except SendError:  # listener gone: resend the same message (same MSH-10) once it is back
                    await s.close()
                    await asyncio.sleep(0.05)
        await s.close()

    async def killer() -> None:
        nonlocal proc
        await enough.wait()
        up.clear()
        os.kill(proc.pid, signal.SIGKILL)  # commits in flight, ACKs unsent: acked ones must be on disk
        proc.wait()
        proc = start_listener(pg_dsn, port)
        up.set()

    await asyncio.gather(killer(), *(sender(lane) for lane in range(4)))
    proc.terminate()
    proc.wait()
    stored = [r["control_id"] for r in await rows(pg_dsn, "status = 'accepted'")]
    assert len(acked) == len(set(acked)) == 80
    assert sorted(stored) == sorted(acked)  # every acknowledged message stored, each once


async def test_two_listeners_on_one_database_share_duplicate_detection(pg_dsn: str) -> None:
    stores = [await PgMessageStore.open(pg_dsn) for _ in range(2)]
    async with MllpListener(stores[0], ListenerConfig(host="127.0.0.1", port=0)) as a, \
            MllpListener(stores[1], ListenerConfig(host="127.0.0.1", port=0)) as b:
        same = [lab_message(i) for i in range(20)]
        results = await asyncio.gather(send_messages("127.0.0.1", a.port, same, seed=1),
                                       send_messages("127.0.0.1", b.port, same, seed=2))
    answers = [acks(r) for r in results]
    assert all(x.code == "AA" for r in answers for x in r)
    duplicates = sum(x.text == "duplicate: already received" for r in answers for x in r)
    assert duplicates == 20  # each message: one worker stored it, the other saw the duplicate
    stored = await rows(pg_dsn)
    assert len(stored) == 20 and all(r["duplicates"] == 1 for r in stored)
    for s in stores:
        await s.close()


async def test_two_outbox_workers_deliver_each_message_once(pg_dsn: str) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=2, max_size=4)
    await pool.execute(DDL)
    async with pool.acquire() as conn:
        for i in range(20):
            await enqueue_vitals(conn, session_report(i))
    his = HisReceiver(Faults(), validate=False)
    port = await his.start()
    senders = [MllpSender("127.0.0.1", port, ack_timeout=5) for _ in range(2)]
    workers = [OutboxWorker(pool, s, batch=3, backoff=0.0) for s in senders]
    while await pool.fetchval("SELECT count(*) FROM hl7_outbound WHERE state = 'pending'"):
        await asyncio.gather(*(w.run_once() for w in workers))
    assert len(his.receipts) == 20 and len(his.accepted) == 20  # SKIP LOCKED: no message claimed twice
    for s in senders:
        await s.close()
    await his.close()
    await pool.close()
