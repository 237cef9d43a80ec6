"""`mchub cloud serve --workers 2` with the fleet simulator; metrics add up over workers;
a database outage is answered 503 with Retry-After and the same batch succeeds afterwards."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from firmware_sim.fleet import run_fleet
from tests.cloud.support import TOKEN, ensure_site, hub, make_cloud, register_hub, serving, worker_process
from tests.support.services import PostgresServer, free_port

pytestmark = pytest.mark.postgres
BATCH = {"Content-Type": "application/vnd.mchub.batch"}


async def test_fleet_on_two_uvicorn_workers_and_summed_metrics(pg_cloud, tmp_path: Path) -> None:
    cfg, _ = pg_cloud
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with worker_process(cfg, port, tmp_path / "serve.log", workers=2):
        report = await run_fleet(url, TOKEN, hubs=6, interval_s=0.2, duration_s=1.0, seed=3)
        assert set(report.statuses) == {200} and report.batches >= 6
        text = ""
        async with aiohttp.ClientSession() as http:
            for _ in range(20):  # both workers answer, each with the totals of both
                async with http.get(f"{url}/metrics") as r:
                    text = await r.text()
                async with http.get(f"{url}/readyz") as r:
                    assert r.status == 200
        stored = re.search(r'mchub_batches_total\{outcome="stored"\} (\d+)', text)
        assert stored and int(stored.group(1)) == report.batches
        assert f'mchub_readings_total {4 * report.batches}' in text.replace(".0\n", "\n")
    log = (tmp_path / "serve.log").read_text()
    assert len(set(re.findall(r'"msg":"cloud worker ready[^"]*pid (\d+)\)"', log))) == 2


async def test_database_outage_is_503_with_retry_after_then_recovers(tmp_path: Path) -> None:
    pg = PostgresServer().start()  # our own server, so we can stop it
    try:
        cfg, keys = make_cloud(tmp_path / "cloud", pg.create_database("outage"))
        h = hub(keys, "HO")
        async with serving(cfg) as url, aiohttp.ClientSession() as http:
            await ensure_site(cfg, "S1")
            await register_hub(cfg, "HO", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
            h.add_visit()
            batch = h.seal_from(1)
            pg.stop("fast")
            async with http.post(f"{url}/api/v1/batches", data=batch, headers=BATCH) as r:
                assert (r.status, r.headers["Retry-After"], (await r.json())["reason"]) == (503, "1", "unavailable")
            async with http.get(f"{url}/readyz") as r:
                assert r.status == 503
            pg.start()
            async with http.post(f"{url}/api/v1/batches", data=batch, headers=BATCH) as r:
                assert r.status == 200
    finally:
        pg.destroy()


def test_a_killed_servers_metrics_directory_is_removed_at_the_next_start(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import subprocess
    import sys
    import tempfile

    from cloud.server.serve import METRICS_PREFIX, metrics_dir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    dead = tmp_path / f"{METRICS_PREFIX}{gone.stdout.strip()}-abc"
    live = tmp_path / f"{METRICS_PREFIX}{os.getpid()}-def"  # a server still running
    other = tmp_path / f"{METRICS_PREFIX}q1w2e3"  # not named by pid: not ours to judge
    for d in (dead, live, other):
        d.mkdir()
        (d / "counter_1.db").write_bytes(b"\0" * 16)
    made = Path(metrics_dir())
    assert not dead.exists() and live.exists() and other.exists()
    assert made.parent == tmp_path and made.name.startswith(f"{METRICS_PREFIX}{os.getpid()}-")
