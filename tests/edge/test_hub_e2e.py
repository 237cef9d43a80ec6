"""A hub in this process, a simulated device and the reference cloud: readings arrive once, in order."""

from __future__ import annotations

import json
from pathlib import Path

from drivers.errors import FrameError
from edge import config
from edge.daemon import Hub
from tests.edge.conftest import make_hub_dir
from tests.support.linedevice import LineDevice
from tests.support.refcloud import RefCloud
from tests.support.waiting import HANG_S, until


def device_config(port: int) -> str:
    return ('[[stations]]\nid = "room-1"\n[[stations.devices]]\nid = "dev-1"\ndriver = "test-line"\n'
            f'address = "127.0.0.1"\nport = {port}\n')


async def wait_until(pred, seconds: float = HANG_S) -> None:  # type: ignore[no-untyped-def]
    await until(pred, "condition", seconds)


async def test_readings_and_sessions_reach_the_cloud_once(tmp_path: Path, refcloud: RefCloud) -> None:
    device = LineDevice(total=300, card_every=50).start()
    cfg = config.load(make_hub_dir(tmp_path / "hub", refcloud, extra='plugins = ["tests.support.hubdriver"]',
                                   stations=device_config(device.port)))
    hub = Hub(cfg)
    await hub.start()
    try:
        await wait_until(device.done.is_set)
        await wait_until(lambda: hub.reader.state()["acked_through"] == hub.reader.state()["next_seq"] - 1)
        hub._frame_error("dev-1", FrameError("bad checksum", b"\x02garbage"))
        await wait_until(lambda: bool(hub.reader._all("SELECT raw FROM frame_errors")))
        assert hub.reader._all("SELECT device_id, reason, raw FROM frame_errors") == [("dev-1", "bad_frame",
                                                                                      b"\x02garbage")]
    finally:
        await hub.stop()
        device.stop()
    rows = refcloud.records("clinic-1")
    assert [r[1] for r in rows] == list(range(1, len(rows) + 1))
    readings = [json.loads(r[3]) for r in rows if r[2] == "Reading"]
    assert sorted(int(r["device_time"][1:]) for r in readings) == [n for n in range(1, 301) if n % 50]
    opened = [json.loads(r[3]) for r in rows if r[2] == "SessionOpened"]
    assert len(opened) == 6 and opened[0]["subject"]["national_id"] == "11010519491231002X"
    bound = [r for r in readings if r.get("session_id")]
    assert len(bound) == 294 - 49  # everything after the first card (n=50) is bound
    assert all(o["flag"] for r in readings for o in r["observations"])
