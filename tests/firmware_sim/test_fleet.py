"""The fleet simulator: valid synthetic ID numbers, realistic visits, `mchub sim fleet` end to end."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from firmware_sim.fleet import percentile, random_national_id
from protocol import idnum
from protocol.model import Reading, SessionClosed, SessionOpened
from tests.cloud.support import hub, make_cloud, worker_process
from tests.support.services import free_port


def test_synthetic_ids_are_valid_and_visits_are_consecutive_records() -> None:
    from cloud.intake.keystore import init_keys  # only to have real cloud keys to seal to

    rng = random.Random(1)
    assert all(idnum.is_valid(random_national_id(rng)) for _ in range(200))
    import tempfile

    h = hub(init_keys(Path(tempfile.mkdtemp()) / "k"), "F1")
    visit = h.add_visit()
    assert [r.seq for r in visit] == list(range(1, 7))
    assert isinstance(visit[0], SessionOpened) and isinstance(visit[-1], SessionClosed)
    assert {r.kind for r in visit if isinstance(r, Reading)} >= {"blood_pressure", "height_weight", "temperature"}
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3 and percentile([], 0.99) == 0.0


@pytest.mark.postgres
def test_mchub_sim_fleet_against_a_cloud_worker(pg_dsn: str, tmp_path: Path) -> None:
    cfg, _ = make_cloud(tmp_path / "cloud", pg_dsn)
    port = free_port()
    with worker_process(cfg, port, tmp_path / "serve.log"):
        r = subprocess.run([sys.executable, "-m", "mchub", "sim", "fleet", "--url", f"http://127.0.0.1:{port}",
                            "--admin-token-file", str(cfg.admin_token_file), "--hubs", "5", "--interval", "0.5",
                            "--duration", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "5 hubs" in r.stdout and "HTTP {200:" in r.stdout and "p99" in r.stdout


async def test_a_503_answer_counts_its_retry_after_wait_in_the_batch_latency(tmp_path: Path) -> None:
    """A hub's latency sample runs from a batch's first try to its answer (bench_ingest's fleet phase)."""
    import aiohttp
    from aiohttp import web

    from cloud.intake.keystore import init_keys
    from protocol.ack import Ack, AckStatus, batch_digest, sign_ack
    from protocol.envelope import parse_header

    keys = init_keys(tmp_path / "k")
    h = hub(keys, "F2")
    h.add_visit()
    answers = ["503", "ack"]

    async def batches(request: web.Request) -> web.Response:
        data = await request.read()
        if answers.pop(0) == "503":
            return web.json_response({"reason": "overloaded", "message": "busy"}, status=503,
                                     headers={"Retry-After": "0.5"})
        head = parse_header(data)
        ack = Ack(AckStatus.STORED, head.hub_id, head.epoch, head.last_seq, head.first_seq, head.last_seq,
                  batch_digest(data), 0)
        return web.Response(body=sign_ack(ack, keys.signing), content_type="application/vnd.mchub.ack")

    app = web.Application()
    app.router.add_post("/api/v1/batches", batches)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            assert await h.sync(http, f"http://127.0.0.1:{port}") == 200
    finally:
        await runner.cleanup()
    assert h.stats.statuses == {503: 1, 200: 1}
    assert len(h.stats.latencies_ms) == 1 and h.stats.latencies_ms[0] >= 500  # one sample, the wait inside it
