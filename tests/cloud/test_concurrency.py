"""Two cloud worker processes, one PostgreSQL, many hubs; duplicate, reordered and concurrent
deliveries; one worker killed with SIGKILL in the middle of an ingest transaction.

Afterwards the database holds every reading exactly once and no high-water mark ever moved
backwards (sampled from sync_state throughout the run).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal

import aiohttp
import asyncpg
import pytest

from cloud.db.engine import epoch_to_db
from firmware_sim.fleet import VirtualHub
from protocol.ack import verify_ack
from protocol.model import Reading, SessionClosed
from tests.cloud.support import TOKEN, hub, worker_process
from tests.support.services import free_port
from tests.support.waiting import until

pytestmark = pytest.mark.postgres
BATCH = {"Content-Type": "application/vnd.mchub.batch"}


async def _post(http: aiohttp.ClientSession, url: str, batch: bytes) -> tuple[int, bytes]:
    async with http.post(f"{url}/api/v1/batches", data=batch, headers=BATCH) as r:
        return r.status, await r.read()


async def _enroll(http: aiohttp.ClientSession, url: str, hubs: list[VirtualHub]) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with http.post(f"{url}/admin/v1/sites", json={"site_id": "S"}, headers=auth) as r:
        assert r.status == 200
    hubs_doc = [{"hub_id": h.hub_id, "site_id": "S", "public_key": h.public_key_hex} for h in hubs]
    async with http.post(f"{url}/admin/v1/hubs", json={"hubs": hubs_doc}, headers=auth) as r:
        assert r.status == 200, await r.text()


async def _chaos(http: aiohttp.ClientSession, urls: list[str], h: VirtualHub, total: int, rng: random.Random,
                 seen: list[int]) -> None:
    """Deliver records 1..total in random, overlapping, duplicated, sometimes parallel batches."""
    acked = 0
    while acked < total:
        first = rng.randint(max(1, acked - 4), min(total, acked + 3))
        batch = h.seal_from(first, limit=rng.randint(1, 8))
        assert batch is not None
        targets = rng.sample(urls, 2) if rng.random() < 0.3 else [rng.choice(urls)]
        results = await asyncio.gather(*(_post(http, u, batch) for u in targets), return_exceptions=True)
        for res in results:
            if isinstance(res, BaseException):
                continue  # a killed worker: the hub simply retries
            status, body = res
            assert status in (200, 409, 503), (status, body)
            if status in (200, 409):
                ack = verify_ack(body, h.cloud.signing, batch)
                seen.append(ack.acked_through_seq)
                acked = max(acked, ack.acked_through_seq)


async def _sample_marks(dsn: str, stop: asyncio.Event, history: dict[tuple[str, int], list[int]]) -> None:
    con = await asyncpg.connect(dsn)
    try:
        while not stop.is_set():
            for r in await con.fetch("SELECT hub_id, epoch, acked_through FROM sync_state"):
                history.setdefault((r["hub_id"], r["epoch"]), []).append(r["acked_through"])
            await asyncio.sleep(0.02)
    finally:
        await con.close()


async def _kill_mid_transaction(http: aiohttp.ClientSession, url: str, proc, dsn: str, h: VirtualHub) -> None:  # type: ignore[no-untyped-def]
    """Hold the outbox key the batch will insert, so the worker blocks after storing readings; SIGKILL it."""
    closed = next(r for r in h.pending if isinstance(r, SessionClosed))
    con = await asyncpg.connect(dsn)
    tx = con.transaction()
    await tx.start()
    await con.execute("INSERT INTO outbox (topic, idempotency_key, payload, next_attempt_ms, created_ms, updated_ms) "
                      "VALUES ('t', $1, '{}', 0, 0, 0)", f"visit.closed/{h.hub_id}/{closed.session_id}")
    batch = h.seal_from(1)
    assert batch is not None
    request = asyncio.create_task(_post(http, url, batch))
    async def waiting() -> int:  # until the worker's transaction waits on our lock
        return int(await con.fetchval("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'mchub-cloud' "
                                      "AND wait_event_type = 'Lock'"))

    await until(waiting, "the worker to reach the outbox insert")
    stored_so_far = await con.fetchval("SELECT COUNT(*) FROM readings WHERE hub_id = $1", h.hub_id)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with pytest.raises(aiohttp.ClientError):
        await request
    await tx.rollback()
    await con.close()
    assert stored_so_far == 0  # uncommitted rows are invisible, and must vanish with the killed transaction


async def test_two_workers_exactly_once_under_chaos_and_a_kill(pg_cloud, pg_dsn, tmp_path) -> None:
    cfg, keys = pg_cloud
    rng = random.Random(7)
    hubs = [hub(keys, f"C{i:03d}", i) for i in range(12)]
    victim = hub(keys, "VICTIM", 99)
    for h in hubs:
        for _ in range(3):
            h.add_visit()
    victim.add_visit()
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    with worker_process(cfg, ports[0], tmp_path / "w0.log") as w0, \
            worker_process(cfg, ports[1], tmp_path / "w1.log"):
        # no keep-alive: a worker is killed and another started on its port, and a pooled connection to the
        # dead one would fail the next request ("Can not write request body"), not the code under test
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                         connector=aiohttp.TCPConnector(force_close=True)) as http:
            await _enroll(http, urls[1], [*hubs, victim])
            await _kill_mid_transaction(http, urls[0], w0, pg_dsn, victim)
            # the hub resends to the surviving worker; it waits until the dead transaction is gone
            status, body = await _post(http, urls[1], victim.seal_from(1))
            assert status == 200 and verify_ack(body, keys.signing.public_key()).acked_through_seq == 6
            with worker_process(cfg, ports[0], tmp_path / "w0b.log"):  # restarted worker joins the chaos
                stop, history = asyncio.Event(), {}
                sampler = asyncio.create_task(_sample_marks(pg_dsn, stop, history))
                seen: dict[str, list[int]] = {h.hub_id: [] for h in hubs}
                await asyncio.gather(*(_chaos(http, urls, h, len(h.pending), random.Random(rng.random()),
                                              seen[h.hub_id]) for h in hubs))
                stop.set()
                await sampler
    for marks in history.values():
        assert marks == sorted(marks), "a high-water mark moved backwards"
    con = await asyncpg.connect(pg_dsn)
    try:
        for h in [*hubs, victim]:
            expected = sorted(r.seq for r in h.pending if isinstance(r, Reading))
            got = [r["seq"] for r in await con.fetch("SELECT seq FROM readings WHERE hub_id = $1 ORDER BY seq",
                                                     h.hub_id)]
            assert got == expected, h.hub_id
            mark = await con.fetchval("SELECT acked_through FROM sync_state WHERE hub_id = $1 AND epoch = $2",
                                      h.hub_id, epoch_to_db(h.epoch))
            assert mark == len(h.pending)
        assert await con.fetchval("SELECT COUNT(*) FROM outbox WHERE topic = 'visit.closed'") == 12 * 3 + 1
        assert await con.fetchval("SELECT COUNT(*) FROM sessions") == 12 * 3 + 1
    finally:
        await con.close()


async def test_large_batches_copy_path_under_a_kill_and_parallel_overlapping_deliveries(pg_cloud, pg_dsn,
                                                                                        tmp_path) -> None:
    """Batches of 200+ readings take the COPY path (pg_ingest._copy_direct): a worker killed after
    its COPY, inside the transaction, leaves nothing; overlapping large batches sent to both
    workers at once are stored exactly once."""
    from cloud.db.pg_ingest import STAGE_FROM

    cfg, keys = pg_cloud
    victim, racer = hub(keys, "BIGV", 5), hub(keys, "BIGR", 6)
    for h in (victim, racer):
        for _ in range(80):
            h.add_visit()  # 480 records, 320 readings
    assert sum(isinstance(r, Reading) for r in victim.pending) >= STAGE_FROM
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    with worker_process(cfg, ports[0], tmp_path / "w0.log") as w0, \
            worker_process(cfg, ports[1], tmp_path / "w1.log"):
        # no keep-alive: a worker is killed and another started on its port, and a pooled connection to the
        # dead one would fail the next request ("Can not write request body"), not the code under test
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                         connector=aiohttp.TCPConnector(force_close=True)) as http:
            await _enroll(http, urls[1], [victim, racer])
            await _kill_mid_transaction(http, urls[0], w0, pg_dsn, victim)  # blocked after the COPY
            status, body = await _post(http, urls[1], victim.seal_from(1))
            assert status == 200 and verify_ack(body, keys.signing.public_key()).acked_through_seq == 480
            with worker_process(cfg, ports[0], tmp_path / "w0b.log"):
                for first in (1, 100, 1, 250, 400, 1):  # overlapping, each to both workers at once
                    batch = racer.seal_from(first)
                    results = await asyncio.gather(*(_post(http, u, batch) for u in urls))
                    assert {s for s, _ in results} <= {200, 409}, results
                status, _ = await _post(http, urls[0], racer.seal_from(1))
                assert status == 200
    con = await asyncpg.connect(pg_dsn)
    try:
        for h in (victim, racer):
            expected = sorted(r.seq for r in h.pending if isinstance(r, Reading))
            got = [r["seq"] for r in await con.fetch("SELECT seq FROM readings WHERE hub_id = $1 ORDER BY seq",
                                                     h.hub_id)]
            assert got == expected, h.hub_id
            assert await con.fetchval("SELECT acked_through FROM sync_state WHERE hub_id = $1", h.hub_id) == 480
        assert await con.fetchval("SELECT COUNT(*) FROM outbox WHERE topic = 'visit.closed'") == 160
    finally:
        await con.close()
