"""Overload on PostgreSQL over real HTTP: beyond the ingest queue a batch is answered 503 with
Retry-After (counted by reason in /metrics); hubs that honour it get everything stored once.
/metrics carries every figure the operations guide names."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import asyncpg
import pytest

from tests.cloud.support import ensure_site, hub, make_cloud, register_hub, serving
from tests.support.waiting import until

pytestmark = pytest.mark.postgres
BATCH = {"Content-Type": "application/vnd.mchub.batch"}
#: what docs/cloud.md promises on /metrics
METRICS = ["mchub_batches_total", "mchub_records_total", "mchub_readings_total", "mchub_rejects_total",
           "mchub_ingest_seconds_bucket", "mchub_ingest_seconds_count", "mchub_ingest_inflight",
           "mchub_ingest_waiting", "mchub_outbox_messages", "mchub_hubs", "mchub_hub_queue_depth"]


def _rejected(text: str, reason: str) -> float:
    m = re.search(rf'mchub_rejects_total\{{reason="{reason}"\}} ([0-9.e+]+)', text)
    assert m, f"no rejects counter for {reason}"
    return float(m.group(1))


async def _metrics(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(f"{url}/metrics") as r:
        assert r.status == 200
        return await r.text()


async def _until_shown(http: aiohttp.ClientSession, url: str, line: str) -> None:
    async def shown() -> bool:
        return line in await _metrics(http, url)

    await until(shown, f"/metrics showing {line!r}")


async def test_overload_is_503_with_retry_after_and_hubs_catch_up_exactly_once(tmp_path, pg_dsn: str) -> None:
    cfg, keys = make_cloud(tmp_path / "cloud", pg_dsn, max_inflight=1, max_queue=1)  # Retry-After 1 s
    hubs = [hub(keys, f"OV{i}", i) for i in range(4)]
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        for h in hubs:
            await register_hub(cfg, h.hub_id, site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
            h.add_visit()
        before = _rejected(await _metrics(http, url), "overloaded")
        blocker = await asyncpg.connect(pg_dsn)
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE sync_state IN EXCLUSIVE MODE")  # PostgreSQL is "slow"
        first = asyncio.create_task(http.post(f"{url}/api/v1/batches", data=hubs[0].seal_from(1), headers=BATCH))
        await _until_shown(http, url, "mchub_ingest_inflight 1.0")
        second = asyncio.create_task(http.post(f"{url}/api/v1/batches", data=hubs[1].seal_from(1), headers=BATCH))
        await _until_shown(http, url, "mchub_ingest_waiting 1.0")
        async with http.post(f"{url}/api/v1/batches", data=hubs[2].seal_from(1), headers=BATCH) as r:
            assert (r.status, r.headers.get("Retry-After"), (await r.json())["reason"]) == (503, "1", "overloaded")
        await tx.rollback()
        await blocker.close()
        for task in (first, second):
            async with await task as r:
                assert r.status == 200
        for h in hubs:  # the fleet's sync loop: waits Retry-After on 503, resends on 409
            assert await h.sync(http, url) == 200
        text = await _metrics(http, url)
    assert _rejected(text, "overloaded") == before + 1
    assert [m for m in METRICS if f"\n{m}" not in text] == []
    con = await asyncpg.connect(pg_dsn)
    try:
        assert tuple(await con.fetchrow("SELECT COUNT(*), COUNT(DISTINCT (hub_id, seq)) FROM readings")) == (16, 16)
        assert await con.fetchval("SELECT COUNT(*) FROM sync_state WHERE acked_through = 6") == 4
    finally:
        await con.close()
