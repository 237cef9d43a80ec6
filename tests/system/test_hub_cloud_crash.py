"""System crash test: a real hub process and a real cloud process on PostgreSQL.

The hub (``python -m mchub edge run``) is fed by a simulated device that resends until
the hub acknowledges, and syncs to ``mchub cloud serve`` backed by the throwaway
PostgreSQL. The hub is SIGKILLed at every named step of ingest and sync (after decode,
inside commit, after commit, after seal, during upload, after the cloud's commit before
the ack is stored, after the ack is stored, during prune), then at random moments over
many iterations (seeded: ``MCHUB_CRASH_SEED``; ``MCHUB_KILL_ITERATIONS``, default 4 —
``python3 dev.py soak`` runs more); the cloud is SIGKILLed and restarted in between. At
the end PostgreSQL must hold every reading exactly once, in one gap-free stream, with the
cloud's mark equal to the hub's.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from edge.crashpoints import STEPS
from tests.support.linedevice import LineDevice
from tests.support.services import PostgresServer
from tests.support.system import CloudProc, HubRig, cloud_numbers, cloud_sql, expected_readings, reconcile
from tests.support.waiting import HANG_S

TOTAL = 1500
ITERATIONS = int(os.environ.get("MCHUB_KILL_ITERATIONS", "4"))
SEED = os.environ.get("MCHUB_CRASH_SEED", "11")


@pytest.mark.slow
def test_every_reading_reaches_postgresql_exactly_once_through_crashes(tmp_path: Path, postgres: PostgresServer,
                                                                      pg_dsn: str) -> None:
    rng = random.Random(SEED)
    cloud = CloudProc(tmp_path / "cloud", pg_dsn).start()
    device = LineDevice(total=TOTAL, window=64, card_every=97, rate=600).start()
    rig = HubRig(tmp_path / "hub", cloud, device)
    kills: list[float] = []
    try:
        for i, step in enumerate(STEPS):
            proc = rig.start(MCHUB_CRASH_AT=step, MCHUB_CRASH_AFTER=str(rng.randint(1, 3)))
            try:
                code = proc.wait(timeout=HANG_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail(f"hub never reached crash point {step}: {rig.log_tail()}")
            assert code == -signal.SIGKILL, f"hub exited {code} instead of dying at {step}"
            if i % 3 == 1:  # the cloud dies too, now and then
                cloud.restart()
        for i in range(ITERATIONS):  # power cuts at random moments, from outside
            proc = rig.start()
            kills.append(round(rng.uniform(0.3, 1.5), 2))
            time.sleep(kills[-1])
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            if i % 2 == 0:
                cloud.restart()
        proc = rig.start()
        try:
            last = rig.wait_synced()
        finally:
            assert rig.stop(proc) == 0
    finally:
        device.stop()
        cloud.stop()
    report = reconcile(expected_readings(device), cloud_numbers(pg_dsn, rig.hub_id))
    assert report.ok, f"{report} (seed {SEED}, kills after {kills} s)"
    epochs = cloud_sql(pg_dsn, "SELECT DISTINCT epoch FROM readings WHERE hub_id = $1", rig.hub_id)
    assert len(epochs) == 1  # the database was never lost
    mark = cloud_sql(pg_dsn, "SELECT max(acked_through) FROM sync_state WHERE hub_id = $1", rig.hub_id)[0][0]
    assert mark == last  # the cloud's high-water mark is the hub's last seq
