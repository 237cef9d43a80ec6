"""Crash test: the hub is SIGKILLed at every named step of ingest and sync, many times.

The hub runs as a real subprocess (``python -m mchub edge run``) fed by a simulated device
that resends until the hub acknowledges (tests/support/linedevice.py), syncing to the
reference cloud, which also injects faults (lost acks, 503, dropped connections, 413).
At the end the cloud must hold every reading exactly once, and each stream gap-free.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.crashpoints import STEPS
from tests.edge.conftest import make_hub_dir
from tests.edge.test_hub_e2e import device_config
from tests.support.linedevice import LineDevice
from tests.support.refcloud import RefCloud
from tests.support.waiting import HANG_S

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 2000
ROUNDS = int(os.environ.get("MCHUB_CRASH_ROUNDS", "1"))  #: more rounds before a release: MCHUB_CRASH_ROUNDS=10


def start_hub(cfg: Path, log: Path, **env: str) -> subprocess.Popen[bytes]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MCHUB_CRASH")}
    full.update(env, PYTHONPATH=str(ROOT))
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mchub", "edge", "run", "--config", str(cfg)],
                                cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT)


def hub_state(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT next_seq, acked_through FROM sync_state").fetchone()
    finally:
        conn.close()


@pytest.mark.slow
def test_sigkill_at_every_step_loses_and_duplicates_nothing(tmp_path: Path, refcloud: RefCloud) -> None:
    rng = random.Random(os.environ.get("MCHUB_CRASH_SEED", "7"))
    device = LineDevice(total=TOTAL, window=64, card_every=97, rate=800).start()
    cfg = make_hub_dir(tmp_path / "hub", refcloud, extra='plugins = ["tests.support.hubdriver"]',
                       stations=device_config(device.port),
                       sync="retention_days = 0\nprune_interval_s = 0\nbatch_max_records = 200\n")
    log = tmp_path / "hub.log"
    crashes: list[str] = []
    try:
        for step in STEPS * ROUNDS:
            proc = start_hub(cfg, log, MCHUB_CRASH_AT=step, MCHUB_CRASH_AFTER=str(rng.randint(1, 4)))
            try:
                code = proc.wait(timeout=HANG_S)  # a hub that never reaches its crash point: a hang
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail(f"hub never reached crash point {step}; log: {log.read_text()[-2000:]}")
            assert code == -signal.SIGKILL, f"hub exited {code} instead of dying at {step}"
            crashes.append(step)
        refcloud.faults.extend(["ack_lost", "503", "drop", "413", "ack_lost"])
        for _ in range(3 * ROUNDS):  # random kills from outside
            proc = start_hub(cfg, log)
            time.sleep(rng.uniform(0.3, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        proc = start_hub(cfg, log)
        try:
            assert device.done.wait(HANG_S), f"device still waits for {TOTAL - len(device.acked)} acks"
            db = tmp_path / "hub" / "data" / "hub.db"
            deadline = time.monotonic() + HANG_S
            while time.monotonic() < deadline:
                nxt, acked = hub_state(db)
                if acked == nxt - 1:
                    break
                time.sleep(0.1)
            else:
                pytest.fail(f"hub did not finish syncing: next {nxt}, acked {acked}")
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(HANG_S) == 0
    finally:
        device.stop()
    assert len(crashes) == ROUNDS * len(STEPS)
    rows = refcloud.records("clinic-1")
    assert {r[0] for r in rows} and len({r[0] for r in rows}) == 1  # one epoch: the database was never lost
    assert [r[1] for r in rows] == list(range(1, len(rows) + 1))  # gap-free, each seq once
    numbers = [int(json.loads(r[3])["device_time"][1:]) for r in rows if r[2] == "Reading"]
    expected = [n for n in range(1, TOTAL + 1) if n % 97]
    assert sorted(numbers) == expected  # every reading exactly once
