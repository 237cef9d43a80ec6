"""Network faults between a real hub and a real cloud: every reading arrives exactly once.

``mchub edge run`` syncs through a fault proxy (firmware_sim/netfaults.py) to
``mchub cloud serve`` on SQLite while a device keeps measuring. The proxy goes through
latency, a bandwidth cap, connection resets in the middle of uploads, a black hole
(packets vanish, nothing answers) and a half-open path (requests reach the cloud and are
committed, the answers never come back), then heals. The reconciliation at the end
compares the device's readings with the cloud's rows: 0 lost, 0 duplicated.

Each phase lasts its time and then until its fault has really met the hub's traffic (a reset
counted, an upload swallowed), and the device measures until the last phase is over: a loaded
machine makes the run longer, never the faults miss the uploads (issue 21).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from firmware_sim.netfaults import Mode, Stats
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
from tests.support.waiting import wait_until

#: what shows that a phase's fault met the hub's traffic: (stats before, stats now) -> bool
Met = Callable[[Stats, Stats], bool]
UPLOADED: Met = lambda was, now: now.upstream_bytes > was.upstream_bytes  # noqa: E731
RESET: Met = lambda was, now: now.resets > was.resets  # noqa: E731
ANY: Met = lambda was, now: True  # noqa: E731

PHASES: list[tuple[str, Mode, float, Met]] = [
    ("latency 300 ms", Mode(latency=0.3), 2.0, UPLOADED),
    ("bandwidth 8 kB/s", Mode(bandwidth=8_000), 2.0, UPLOADED),
    ("reset mid-upload", Mode(reset_after=1_500), 2.0, RESET),
    ("healthy", Mode(), 0.5, ANY),
    ("black hole", Mode(black_hole=True), 3.0, ANY),
    ("half-open", Mode(half_open=True), 3.0, UPLOADED),  # an upload reached the cloud, its answer did not
    ("reset mid-upload again", Mode(reset_after=700), 1.5, RESET),
]


@pytest.mark.slow
def test_latency_bandwidth_resets_black_hole_half_open_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    cloud = CloudProc(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}").start()
    proxy = ThreadedProxy(cloud.port).start()
    device = LineDevice(total=None, window=32, card_every=97, rate=60).start()  # measures until finish()
    rig = HubRig(tmp_path / "hub", cloud, device, sync_url=proxy.url, sync={"timeout_s": 2, "batch_max_records": 40})
    proc = rig.start()
    try:
        wait_until(lambda: rig.state()[1] > 0 or proc.poll() is not None, "the hub's first acknowledged upload")
        for name, mode, seconds, met in PHASES:
            was = dataclasses.replace(proxy.proxy.stats)
            proxy.set(mode, cut=mode.black_hole or mode.half_open)
            time.sleep(seconds)  # the phase's length: the scenario, not a timing assertion
            wait_until(lambda: met(was, proxy.proxy.stats) or proc.poll() is not None,  # noqa: B023
                       f"the {name} phase to meet an upload", interval=0.1)
            assert proc.poll() is None, f"hub died during {name}: {rig.log_tail()}"
        proxy.set(Mode())
        device.finish()
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
