"""Presence from every signal, and the configuration push report (issue 19 findings 1 and 3).

A cloud without MQTT (the demo's) used to mark hubs online from MQTT alone: a hub syncing
thousands of records showed "离线" with a frozen last-seen time, and enrollment still
handed it an MQTT URL, so the hub's status page showed a red broker light. Now:

* enrollment on a cloud with ``[mqtt] enabled = false`` gives no broker URL, and the
  enrolled hub runs without ``[mqtt]`` (its status page says "not configured");
* every accepted batch makes the hub online and moves ``last_seen_ms``; it also records
  what the hub reports about its configuration push (applied version, devices down), which
  the admin console shows beside the cloud's version, with an alarm;
* a hub with no batch, telemetry or status message within ``[fleet] presence_window_s``
  is swept offline.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from cloud import config as config_mod
from cloud.db.engine import Database
from cloud.fleet import presence
from cloud.web import admin_ops
from edge import enrolled
from edge.config import HubConfig
from protocol.ids import now_ms
from provisioning import hubside
from tests.cloud.fleet_support import ProvCloud, add_user, call, login, make_prov_cloud
from tests.cloud.support import serving
from tests.cloud.test_fleet_api import virtual


@pytest.fixture(params=["sqlite", "postgres"])
def prov(request: pytest.FixtureRequest, tmp_path: Path) -> ProvCloud:
    url = (f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("pg_dsn")))
    return make_prov_cloud(tmp_path / "cloud", url)


async def _row(db: Database, hub_id: str) -> dict[str, object]:
    async with db.transaction() as tx:
        row = await tx.fetchrow("SELECT online, last_seen_ms, config_applied, devices_down FROM hubs "
                                "WHERE hub_id = $1", hub_id)
    assert row is not None
    return {**dict(row), "online": bool(row["online"])}


async def test_a_syncing_hub_is_online_without_mqtt_and_reports_its_configuration(prov: ProvCloud,
                                                                                   tmp_path: Path) -> None:
    assert not prov.cfg.mqtt.enabled
    await add_user(prov, "alice", "admin")
    async with serving(prov.cfg) as url:
        alice = await login(prov, url, "alice")
        await call(alice, "POST", "/api/v1/admin/sites", {"site_id": "dongcheng", "name": "东城"})
        token = (await call(alice, "POST", "/api/v1/admin/tokens", {"site_id": "dongcheng"}))["token"]
        state = await asyncio.to_thread(hubside.enroll, url, token, tmp_path / "hub", hub_serial="PI-0001")
        assert state.mqtt.url == ""  # no broker to hand out
        hub_cfg = HubConfig(path=tmp_path / "hub.toml", identity_dir=tmp_path / "hub", data_dir=tmp_path / "data")
        assert enrolled.with_enrollment(hub_cfg).mqtt is None  # status page: MQTT "not configured", never red

        db = await Database.connect(prov.cfg.database.url)
        try:
            hub_id = state.identity.hub_id
            assert (await _row(db, hub_id))["online"] is False
            hub = virtual(state)
            seen = []
            for first, report in ((1, {"X-Mchub-Config-Applied": "0", "X-Mchub-Devices-Down": "bp-1,scale-1"}),
                                  (7, {"X-Mchub-Config-Applied": "0", "X-Mchub-Devices-Down": ""})):
                hub.add_visit()
                async with aiohttp.ClientSession() as http, \
                        http.post(f"{url}/api/v1/batches", data=hub.seal_from(first), headers=report) as resp:
                    assert resp.status == 200
                    assert resp.headers["X-Mchub-Config-Version"] == "0"  # read in the batch's own transaction
                hub.acked = first + 5
                row = await _row(db, hub_id)
                assert row["online"] is True and row["config_applied"] == 0
                seen.append(row["last_seen_ms"])
                if first == 1:
                    assert row["devices_down"] == "bp-1,scale-1"
                    await asyncio.sleep(0.01)  # the next batch is seen later
            assert seen[1] > seen[0]  # last-seen moves with every sync
            assert (await _row(db, hub_id))["devices_down"] == ""

            await call(alice, "POST", f"/api/v1/admin/hubs/{hub_id}/devices",
                       {"station": 1, "kind": "ble-bp", "address": "aa:bb:cc:dd:ee:ff"})
            async with db.transaction() as tx:
                listed = {h["hub_id"]: h for h in await admin_ops.hubs(tx, now_ms())}
            assert listed[hub_id]["config_desired"] == 1 and listed[hub_id]["config_pending"] is True
            async with aiohttp.ClientSession() as http, \
                    http.post(f"{url}/api/v1/batches", data=hub.seal_from(7)) as resp:  # a duplicate: 200 too
                assert resp.status == 200
                assert resp.headers["X-Mchub-Config-Version"] == "1"  # the hub learns of the new configuration

            async with aiohttp.ClientSession() as http, http.post(
                    f"{url}/api/v1/batches", data=b"x" * 64,
                    headers={"X-Mchub-Devices-Down": "a" * 5000}) as resp:  # refused batch: nothing recorded
                assert resp.status != 200
            assert await presence.sweep(db, prov.cfg.fleet.presence_window_s) == 0  # seen just now: stays
            assert await presence.sweep(db, 60, at_ms=now_ms() + 61_000) == 1
            assert (await _row(db, hub_id))["online"] is False
        finally:
            await db.close()


def test_report_headers_are_bounded_and_checked() -> None:
    assert presence.down_list("bp-1,scale-1") == "bp-1,scale-1"
    assert presence.down_list("") == ""
    assert presence.down_list("bp 1") is None and presence.down_list("x" * 3000) is None
    assert presence.down_list(",".join(f"d{i}" for i in range(65))) is None
    assert presence.down_from_telemetry({"b": "error: x", "a": "connected", "c": "disconnected"}) == "b,c"


def test_presence_window_is_configured_in_its_own_section(tmp_path: Path) -> None:
    cfg = config_mod.parse('[fleet]\npresence_window_s = 300\n', tmp_path / "cloud.toml")
    assert cfg.fleet.presence_window_s == 300
    with pytest.raises(config_mod.ConfigError, match=r"(?s)\[fleet\] presence_window_s.*Fix: use 10 or more"):
        config_mod.parse('[fleet]\npresence_window_s = 1\n', tmp_path / "cloud.toml")
