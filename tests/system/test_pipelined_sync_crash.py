"""System crash test of the sync window: a real hub draining a backlog with several batches in flight.

A real hub (``mchub edge run``, ``batches_in_flight = 4``, 20 records a batch) collects a
backlog while the cloud (``mchub cloud serve`` on the throwaway PostgreSQL) is down, then
drains it. The hub is SIGKILLed at each sync step (a batch sealed, a request on the wire,
the cloud's answer read but its ack not stored, an ack stored) the 2nd to 9th time it is
reached, so batches ahead of the one being acknowledged are on the wire when it dies; the
cloud is SIGKILLed too, then both at random moments. At the end PostgreSQL holds every
reading exactly once in one gap-free stream and the cloud's mark is the hub's last seq.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.linedevice import LineDevice
from tests.support.services import PostgresServer
from tests.support.system import CloudProc, HubRig, cloud_numbers, cloud_sql, expected_readings, reconcile
from tests.support.waiting import HANG_S

TOTAL = 2000
SYNC_STEPS = ("after_seal", "during_upload", "after_response", "after_ack_stored")
STARTED = "status page on http://"  #: the hub's last start-up log line: everything is running


def _wait_started(rig: HubRig, proc: subprocess.Popen[bytes], before: int, timeout: float = HANG_S) -> None:
    """Wait for this start's last start-up log line (``before``: how many the log held before it)."""
    deadline = time.monotonic() + timeout
    while rig.log_tail(10**9).count(STARTED) <= before:
        assert proc.poll() is None and time.monotonic() < deadline, f"hub did not start: {rig.log_tail()}"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_backlog_drained_with_batches_in_flight_survives_kills_of_hub_and_cloud(
        tmp_path: Path, postgres: PostgresServer, pg_dsn: str) -> None:
    rng = random.Random(21)
    cloud = CloudProc(tmp_path / "cloud", pg_dsn).start()
    device = LineDevice(total=TOTAL, window=256).start()
    rig = HubRig(tmp_path / "hub", cloud, device, sync={"batch_max_records": 20, "batches_in_flight": 4})
    try:
        cloud.kill()  # the backlog builds up while the cloud is away
        proc = rig.start()
        try:
            assert device.done.wait(HANG_S), f"the hub did not store the device's readings: {rig.log_tail()}"
        finally:
            assert rig.stop(proc) == 0
        assert rig.state() == (TOTAL + 1, 0)
        cloud.start()
        for i, step in enumerate(SYNC_STEPS * 2):
            proc = rig.start(MCHUB_CRASH_AT=step, MCHUB_CRASH_AFTER=str(rng.randint(2, 9)))
            try:
                code = proc.wait(timeout=HANG_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                pytest.fail(f"hub never reached crash point {step}: {rig.log_tail()}")
            assert code == -signal.SIGKILL, f"hub exited {code} instead of dying at {step}: {rig.log_tail()}"
            if i % 2 == 1:
                cloud.restart()
        for _ in range(3):  # the cloud, then the hub, dies at a random moment of the drain
            proc = rig.start()
            time.sleep(rng.uniform(0.3, 1.0))
            cloud.restart()
            time.sleep(rng.uniform(0.2, 0.8))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        started_before = rig.log_tail(10**9).count(STARTED)
        proc = rig.start()
        try:
            # the drain may be complete already: the hub stopped below must be up, not half-started
            _wait_started(rig, proc, started_before)
            last = rig.wait_synced()
        finally:
            assert rig.stop(proc) == 0
    finally:
        device.stop()
        cloud.stop()
    report = reconcile(expected_readings(device), cloud_numbers(pg_dsn, rig.hub_id))
    assert report.ok, str(report)
    mark = cloud_sql(pg_dsn, "SELECT max(acked_through) FROM sync_state WHERE hub_id = $1", rig.hub_id)[0][0]
    assert mark == last == TOTAL
