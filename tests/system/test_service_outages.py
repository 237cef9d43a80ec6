"""Outages of the services around a real hub and a real cloud: nothing lost, nothing twice.

``mchub edge run`` syncs to ``mchub cloud serve`` on its own PostgreSQL, both connected
to their own Mosquitto for presence, while a device keeps measuring:

1. the cloud is SIGKILLed during ingest and restarted;
2. PostgreSQL stops (immediate shutdown: a crash) during ingest, the cloud answers 503
   meanwhile, then PostgreSQL comes back;
3. the MQTT broker is down for a while (``MCHUB_BROKER_DOWN_S``, default 6 s; the soak
   runs minutes): the hub keeps storing and syncing, and when the broker returns the hub
   reconnects and the cloud sees it online again.

The reconciliation at the end compares the device's readings with the cloud's rows. The
device measures until the last phase is over (however long a loaded machine takes over the
phases), and each phase waits on what it needs to see (issue 21), not on a timer.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.linedevice import LineDevice
from tests.support.services import MosquittoServer, PostgresServer
from tests.support.system import CloudProc, HubRig, cloud_numbers, cloud_sql, expected_readings, reconcile
from tests.support.waiting import HANG_S, wait_until

BROKER_DOWN_S = float(os.environ.get("MCHUB_BROKER_DOWN_S", "6"))


def wait_for(what: str, pred: Callable[[], bool], timeout: float = HANG_S) -> None:
    wait_until(pred, what, timeout, interval=0.2)


@pytest.mark.slow
def test_cloud_kill_postgres_crash_and_broker_outage_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    # its own cluster, durable like production: with synchronous_commit off a crash loses acknowledged
    # batches, and the hub has already pruned them (this test finds exactly that)
    pg = PostgresServer(durable=True).start()
    broker = MosquittoServer().start()
    device = LineDevice(total=None, window=32, card_every=97, rate=60).start()  # measures until finish()
    cloud: CloudProc | None = None
    try:
        dsn = pg.dsn()
        cloud = CloudProc(tmp_path / "cloud", dsn, extra_toml=f"[mqtt]\nenabled = true\nport = {broker.port}\n")
        cloud.start()
        rig = HubRig(tmp_path / "hub", cloud, device,
                     extra=f'[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\ntelemetry_interval_s = 1\n')

        def presence() -> tuple[bool, int]:
            online, seen = cloud_sql(dsn, "SELECT online, last_seen_ms FROM hubs WHERE hub_id = $1", rig.hub_id)[0]
            return bool(online), int(seen or 0)  # type: ignore[call-overload]

        proc = rig.start()
        try:
            wait_for("the hub to be online in the cloud", lambda: presence()[0])
            wait_for("the first acknowledged batch", lambda: rig.state()[1] > 0)
            cloud.restart()  # 1. SIGKILL during ingest
            acked = rig.state()[1]
            wait_for("ingest after the cloud restart", lambda: rig.state()[1] > acked)
            refused_before = cloud.log_tail(1 << 30).count("unavailable")
            pg.stop("immediate")  # 2. the database crashes under the cloud
            # the cloud answers 503 (the hub keeps uploading), it does not fall over
            wait_for("the cloud to answer 503 while PostgreSQL is down",
                     lambda: cloud.log_tail(1 << 30).count("unavailable") > refused_before)
            assert cloud.proc is not None and cloud.proc.poll() is None, cloud.log_tail()
            pg.start()
            acked = rig.state()[1]
            wait_for("ingest after PostgreSQL came back", lambda: rig.state()[1] > acked)
            broker.stop()  # 3. presence channel gone; readings must not care
            stored, acked = rig.state()
            time.sleep(BROKER_DOWN_S)  # how long the outage lasts: the scenario, not a timing assertion
            # the hub keeps storing and syncing without its broker (while the broker is still down)
            wait_for("readings stored and acknowledged without the broker",
                     lambda: rig.state()[0] > stored and rig.state()[1] > acked)
            assert proc.poll() is None, rig.log_tail(8000)
            back = int(time.time() * 1000)
            broker.start()
            wait_for("presence to recover", lambda: presence()[0] and presence()[1] > back,
                     timeout=HANG_S if BROKER_DOWN_S < 30 else 180)  # reconnect backoff grows to 60 s
            device.finish()
            last = rig.wait_synced()
        finally:
            code = rig.stop(proc)
        assert code == 0, rig.log_tail()
        report = reconcile(expected_readings(device), cloud_numbers(dsn, rig.hub_id))
        assert report.ok, report
        mark = cloud_sql(dsn, "SELECT max(acked_through) FROM sync_state WHERE hub_id = $1", rig.hub_id)[0][0]
        assert mark == last
    finally:
        device.stop()
        if cloud is not None:
            cloud.stop()
        broker.destroy()
        pg.destroy()
