"""System crash test: a real hub process and a real cloud process on PostgreSQL.

The hub (``python -m mchub edge run``) is fed by a simulated device that resends until
the hub acknowledges, and syncs to ``mchub cloud serve`` backed by the throwaway
PostgreSQL. The hub is SIGKILLed at every named step of ingest and sync (after decode,
inside commit, after commit, after seal, during upload, after the cloud's commit before
the ack is stored, after the ack is stored, during prune), then at random moments; the
cloud is SIGKILLed and restarted in between. At the end PostgreSQL must hold every
reading exactly once, in one gap-free stream, with the cloud's mark equal to the hub's.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from edge import identity
from edge.crashpoints import STEPS
from protocol.keys import ed25519_raw
from tests.edge.test_crash import hub_state, start_hub
from tests.edge.test_hub_e2e import device_config
from tests.support.linedevice import LineDevice
from tests.support.services import PostgresServer, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 1500
HUB = "clinic-7"


def mchub(*args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "mchub", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


class Cloud:
    """``mchub cloud serve`` as a subprocess that can be killed and restarted."""

    def __init__(self, base: Path, dsn: str) -> None:
        self.base, self.port = base, free_port()
        base.mkdir()
        (base / "cloud.toml").write_text(
            f'[server]\nport = {self.port}\n[database]\nurl = "{dsn}"\n[keys]\ndir = "keys"\n'
            '[admin]\ntoken_file = ""\n[logging]\njson = false\n', encoding="utf-8")
        mchub("cloud", "init", "--config", "cloud.toml", cwd=base)
        mchub("cloud", "migrate", "--config", "cloud.toml", cwd=base)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.base / "cloud.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "mchub", "cloud", "serve", "--config", "cloud.toml"],
                                         cwd=self.base, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, "PYTHONPATH": str(ROOT)})
        wait_for_port(self.port, 60, self.proc)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)


def enroll_by_hand(cloud: Cloud, hub_dir: Path) -> None:
    """What an installer does without provisioning: fetch the cloud's keys, init, register."""
    keys_doc = hub_dir / "cloud-keys.json"
    with urllib.request.urlopen(cloud.url + "/api/v1/keys", timeout=10) as response:
        keys_doc.write_bytes(response.read())
    ident = identity.init(hub_dir / "identity", HUB, keys_doc)
    mchub("cloud", "hub", "add", "--id", HUB, "--site", "S1", "--config", "cloud.toml",
          "--public-key", ed25519_raw(ident.signer.public_key()).hex(), cwd=cloud.base)


async def cloud_rows(dsn: str) -> tuple[list[asyncpg.Record], int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT epoch, seq, device_time FROM readings WHERE hub_id = $1 ORDER BY seq", HUB)
        mark = await conn.fetchval("SELECT max(acked_through) FROM sync_state WHERE hub_id = $1", HUB)
        return rows, int(mark or 0)
    finally:
        await conn.close()


@pytest.mark.slow
def test_every_reading_reaches_postgresql_exactly_once_through_crashes(tmp_path: Path, postgres: PostgresServer,
                                                                      pg_dsn: str) -> None:
    rng = random.Random(11)
    cloud = Cloud(tmp_path / "cloud", pg_dsn)
    cloud.start()
    hub_dir = tmp_path / "hub"
    hub_dir.mkdir()
    enroll_by_hand(cloud, hub_dir)
    device = LineDevice(total=TOTAL, window=64, card_every=97, rate=600).start()
    cfg = hub_dir / "hub.toml"
    cfg.write_text(
        '[hub]\nidentity_dir = "identity"\ndata_dir = "data"\nlanguage = "en"\n'
        'plugins = ["tests.support.hubdriver"]\n'
        f'[sync]\nurl = "{cloud.url}"\nlinger_ms = 20\nmax_backoff_s = 0.3\nretention_days = 0\n'
        'prune_interval_s = 0\nbatch_max_records = 150\n'
        '[web]\nbind = "127.0.0.1"\nport = 0\n[storage]\nmin_free_mb = 0\n' + device_config(device.port),
        encoding="utf-8")
    log = tmp_path / "hub.log"
    try:
        for i, step in enumerate(STEPS):
            proc = start_hub(cfg, log, MCHUB_CRASH_AT=step, MCHUB_CRASH_AFTER=str(rng.randint(1, 3)))
            try:
                code = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail(f"hub never reached crash point {step}: {log.read_text()[-2000:]}")
            assert code == -signal.SIGKILL, f"hub exited {code} instead of dying at {step}"
            if i % 3 == 1:  # the cloud dies too, now and then
                cloud.kill()
                cloud.start()
        for _ in range(3):  # random kills of both, from outside
            proc = start_hub(cfg, log)
            time.sleep(rng.uniform(0.3, 1.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            cloud.kill()
            cloud.start()
        proc = start_hub(cfg, log)
        try:
            assert device.done.wait(90), f"device still waits for {TOTAL - len(device.acked)} acks"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                nxt, acked = hub_state(hub_dir / "data" / "hub.db")
                if acked == nxt - 1:
                    break
                time.sleep(0.2)
            else:
                pytest.fail(f"hub did not finish syncing: next {nxt}, acked {acked}; {log.read_text()[-1500:]}")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
    finally:
        device.stop()
        cloud.stop()
    rows, mark = asyncio.run(cloud_rows(pg_dsn))
    assert len({r["epoch"] for r in rows}) == 1
    numbers = sorted(int(r["device_time"][1:]) for r in rows)
    assert numbers == [n for n in range(1, TOTAL + 1) if n % 97]  # every reading exactly once
    assert mark == nxt - 1  # the cloud's high-water mark is the hub's last seq
