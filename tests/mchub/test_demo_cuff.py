"""Issue 20: the kiosk's live cuff-pressure screen shows in the demo. The demo's first station (一诊室)
has a Bluetooth BP monitor: a real hub process runs the real BLE driver (``mchub.demo.blebridge``)
and the demo's :class:`~mchub.demo.devices.BleBpMonitor` sends intermediate cuff pressures (0x2A36)
before the measurement; the kiosk's event stream shows them as the "measuring" phase."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp

from edge import identity
from firmware_sim.idcard_sim import CardVisit
from firmware_sim.patients import patients
from mchub.demo.devices import BleBpMonitor, SimDevice, build_rig
from mchub.procs import ProcessGroup, free_port, tcp_ready
from tests.support.refcloud import RefCloud
from tests.support.waiting import HANG_S

ROOT = Path(__file__).resolve().parents[2]


async def test_the_demos_bluetooth_monitor_shows_the_cuff_rising_on_the_kiosk(tmp_path: Path) -> None:
    rig = build_rig("room-1", tmp_path / "tty", seed=7, name="一诊室", ble_bp=True)
    card, bp = rig.devices["idcard"], rig.devices["bp"]
    assert isinstance(card, SimDevice) and isinstance(bp, BleBpMonitor)
    await rig.start()
    base, port = tmp_path / "hub", free_port()
    base.mkdir()
    keys = RefCloud(base / "keys.db").write_key_file(base / "cloud.json")  # only its key file; never started
    identity.init(base / "identity", "demo-cuff", keys)
    (base / "hub.toml").write_text(
        '[hub]\nidentity_dir = "identity"\ndata_dir = "data"\nplugins = ["mchub.demo.blebridge"]\n'
        f'[web]\nbind = "127.0.0.1"\nport = {port}\nsecure_cookie = false\n[storage]\nmin_free_mb = 0\n'
        + rig.hub_toml(), encoding="utf-8")
    group = ProcessGroup(tmp_path / "logs")
    phases: list[dict[str, str]] = []
    try:
        await group.start("hub", [sys.executable, "-m", "mchub", "edge", "run", "--config", str(base / "hub.toml")],
                          env={"PYTHONPATH": str(ROOT)}, ready=tcp_ready(port), ready_within=60)
        async with aiohttp.ClientSession() as http, \
                http.get(f"http://127.0.0.1:{port}/kiosk/room-1/events?lang=zh-CN") as stream:
            async def read_until(phase: str) -> None:
                name = ""
                async for raw in stream.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name == "state":
                        phases.append(json.loads(line[6:]))
                        if phases[-1]["phase"] == phase:
                            return

            await asyncio.wait_for(read_until("idle"), HANG_S)
            p = next(patients(seed=3, mix="adult=1"))
            card.feed.push(CardVisit(p, gap=1, stay=2))  # type: ignore[arg-type]
            await asyncio.wait_for(read_until("identified"), HANG_S)
            measuring = asyncio.create_task(read_until("measuring"))
            await asyncio.wait_for(bp.measure(p), HANG_S)
            await asyncio.wait_for(measuring, HANG_S)
            await asyncio.wait_for(read_until("results"), HANG_S)
            async with http.get(f"http://127.0.0.1:{port}/kiosk/room-1") as r:
                assert "一诊室" in await r.text()  # the station by the name people use
    finally:
        await group.stop_all()
        await rig.stop()
    cuff = next(e["html"] for e in phases if e["phase"] == "measuring")
    assert "kiosk-cuff-value" in cuff and "mmHg" in cuff
    assert f"{p.systolic}/{p.diastolic}" in phases[-1]["html"]
    assert len(bp.delivered) == 1 and bp.delivered[0].systolic == p.systolic
