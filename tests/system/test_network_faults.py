"""Network faults between a real hub and a real cloud: every reading arrives exactly once.

``mchub edge run`` syncs through a fault proxy (firmware_sim/netfaults.py) to
``mchub cloud serve`` on SQLite while a device keeps measuring. The proxy goes through
latency, a bandwidth cap, connection resets in the middle of uploads, a black hole
(packets vanish, nothing answers) and a half-open path (requests reach the cloud and are
committed, the answers never come back), then heals. The reconciliation at the end
compares the device's readings with the cloud's rows: 0 lost, 0 duplicated.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from firmware_sim.netfaults import Mode
from tests.support.linedevice import LineDevice
from tests.support.system import (
    CloudProc,
    HubRig,
    ThreadedProxy,
    cloud_numbers,
    cloud_sql,
    expected_readings,
    reconcile,
)

PHASES: list[tuple[str, Mode, float]] = [
    ("latency 300 ms", Mode(latency=0.3), 2.0),
    ("bandwidth 8 kB/s", Mode(bandwidth=8_000), 2.0),
    ("reset mid-upload", Mode(reset_after=1_500), 2.0),
    ("healthy", Mode(), 0.5),
    ("black hole", Mode(black_hole=True), 3.0),
    ("half-open", Mode(half_open=True), 3.0),
    ("reset mid-upload again", Mode(reset_after=700), 1.5),
]


@pytest.mark.slow
def test_latency_bandwidth_resets_black_hole_half_open_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    cloud = CloudProc(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}").start()
    proxy = ThreadedProxy(cloud.port).start()
    device = LineDevice(total=900, window=32, card_every=97, rate=60).start()
    rig = HubRig(tmp_path / "hub", cloud, device, sync_url=proxy.url, sync={"timeout_s": 2, "batch_max_records": 40})
    proc = rig.start()
    try:
        for name, mode, seconds in PHASES:
            proxy.set(mode, cut=mode.black_hole or mode.half_open)
            time.sleep(seconds)
            assert proc.poll() is None, f"hub died during {name}: {rig.log_tail()}"
        proxy.set(Mode())
        last = rig.wait_synced()
        assert rig.stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proxy.stop()
        device.stop()
        cloud.stop()
    stats = proxy.proxy.stats
    assert stats.resets >= 2 and stats.connections >= 3, stats  # the faults really happened
    report = reconcile(expected_readings(device), cloud_numbers(cloud.db_url, rig.hub_id))
    assert report.ok, report
    assert last >= report.produced  # every reading (and the sessions) has a seq the cloud acknowledged
    # half-open: batches were committed whose acks never came back; the resends were answered as duplicates
    assert cloud_sql(cloud.db_url, "SELECT sum(duplicates) FROM sync_state")[0][0] >= 1
