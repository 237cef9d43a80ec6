"""The admin console: sites, hubs (revoke), users and roles, audit log viewer, registers slot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cloud.fleet.stores import sql_stores
from provisioning.admin import SITE_ID_PATTERN
from tests.cloud.support import make_cloud
from tests.cloud.web.support import PASSWORD, WEB, code, csrf_from, running, seed, sign_in


@pytest.fixture
async def admin(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg, keys = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    async with running(cfg) as cloud:
        await seed(cloud, keys)
        secret = await cloud.user("root", "admin")
        async with cloud.client() as c:
            await sign_in(c, "root", secret)
            yield cloud, c


async def test_overview_lists_sites_hubs_and_adds_a_site(admin: Any) -> None:
    cloud, c = admin
    r = await c.get("/ui/admin")
    assert r.status_code == 200 and "城关镇卫生院" in r.text and 'id="hub-H1"' in r.text
    assert "built-in method" not in r.text and "None" not in r.text
    token = csrf_from(r.text)
    r = await c.post("/ui/admin/sites", data={"site_id": "s2", "name": "东城社区", "csrf_token": token})
    assert r.status_code == 303 and "ok=s2" in r.headers["location"]
    assert "东城社区" in (await c.get("/ui/admin")).text
    bad = await c.post("/ui/admin/sites", data={"site_id": "no spaces!", "name": "x", "csrf_token": token})
    assert "error=" in bad.headers["location"]
    # one id rule (provisioning.admin.check_site_id): the form's pattern is the rule, upper case is refused
    assert f'pattern="{SITE_ID_PATTERN}"' in (await c.get("/ui/admin")).text
    upper = await c.post("/ui/admin/sites", data={"site_id": "S001", "name": "x", "csrf_token": token},
                         follow_redirects=True)
    assert "机构编号须为小写：请改用 s001（而不是 S001）。" in upper.text
    assert await cloud.sql("SELECT 1 FROM audit_log WHERE action = 'site.add' AND actor = 'web:root'")


async def test_revoking_a_hub_needs_a_reason_and_is_audited(admin: Any) -> None:
    cloud, c = admin
    token = csrf_from((await c.get("/ui/admin")).text)
    r = await c.post("/ui/admin/hubs/H2/revoke", data={"reason": " ", "csrf_token": token})
    assert "error=" in r.headers["location"]
    r = await c.post("/ui/admin/hubs/H2/revoke", data={"reason": "stolen", "csrf_token": token})
    assert "ok=H2" in r.headers["location"]
    assert (await cloud.sql("SELECT status FROM hubs WHERE hub_id = 'H2'"))[0]["status"] == "revoked"
    rows = await cloud.sql("SELECT actor, reason FROM audit_log WHERE action = 'hub.revoke'")
    assert [(x["actor"], x["reason"]) for x in rows] == [("web:root", "stolen")]
    page = (await c.get("/ui/admin")).text
    assert "已吊销" in page and "stolen" in page


async def test_users_are_added_with_a_second_factor_shown_once_and_can_sign_in(admin: Any) -> None:
    cloud, c = admin
    page = await c.get("/ui/admin/users")
    token = csrf_from(page.text)
    r = await c.post("/ui/admin/users", data={"username": "lin", "display_name": "林", "password": PASSWORD,
                                              "roles": ["integration"], "csrf_token": token})
    assert r.status_code == 200 and 'id="totp-secret"' in r.text and '<svg' in r.text.split('id="totp-qr"')[1]
    assert r.headers["cache-control"] == "no-store"
    secret = r.text.split('id="totp-secret">')[1].split("<")[0]
    assert secret not in (await c.get("/ui/admin/users")).text  # shown once
    assert "待确认" in (await c.get("/ui/admin/users")).text.split('id="user-lin"')[1].split("</tr>")[0]
    async with cloud.client() as other:
        # not active before a first code is confirmed: the sign-in says so once the password is right
        refused = await sign_in(other, "lin", secret, expect=401)
        assert "动态码尚未启用" in refused.text
    wrong = await c.post("/ui/admin/users/lin/totp/confirm", data={"code": "000000", "csrf_token": token})
    assert wrong.status_code == 200 and "动态码不正确" in wrong.text and 'id="totp-qr"' in wrong.text
    # the previous step's code confirms (so the current one still signs in below)
    ok = await c.post("/ui/admin/users/lin/totp/confirm", data={"code": code(secret, -1), "csrf_token": token})
    assert "ok=lin" in ok.headers["location"]
    assert "已启用" in (await c.get("/ui/admin/users")).text.split('id="user-lin"')[1].split("</tr>")[0]
    async with cloud.client() as other:
        await sign_in(other, "lin", secret)
        assert (await other.get("/ui/dashboard")).status_code == 200
        assert (await other.get("/ui/admin")).status_code == 403
        # roles changed to auditor: the audit log opens, the dashboard does not (after signing in again)
        r = await c.post("/ui/admin/users/lin/roles", data={"roles": ["auditor"], "csrf_token": token})
        assert "ok=lin" in r.headers["location"]
        # disabling ends the session at once
        r = await c.post("/ui/admin/users/lin/active", data={"active": "0", "csrf_token": token})
        assert "ok=lin" in r.headers["location"]
        assert (await other.get("/ui/dashboard")).status_code == 303
    weak = await c.post("/ui/admin/users", data={"username": "weak", "password": "short", "roles": ["admin"],
                                                 "csrf_token": token})
    assert "error=" in weak.headers["location"]
    me = await c.post("/ui/admin/users/root/active", data={"active": "0", "csrf_token": token})
    assert "error=" in me.headers["location"]
    # refusals in the reader's language, the service's own words behind 详情 (was "roles must be some of… (got none)")
    no_roles = {"username": "zhao", "password": PASSWORD, "csrf_token": token}
    zh = await c.post("/ui/admin/users?lang=zh-CN", data=no_roles, follow_redirects=True)
    assert "请至少选择一个角色" in zh.text.split('class="flash error"')[1].split("<details>")[0]
    assert "<summary>详情</summary><code>roles must be some of" in zh.text
    en = await c.post("/ui/admin/users?lang=en", data=no_roles, follow_redirects=True)
    assert "Choose at least one role" in en.text


async def test_an_enrollment_token_is_shown_once_and_rotation_is_requested(admin: Any) -> None:
    cloud, c = admin
    token = csrf_from((await c.get("/ui/admin")).text)
    r = await c.post("/ui/admin/tokens", data={"site_id": "S1", "csrf_token": token})
    assert r.status_code == 200 and 'id="new-token"' in r.text and r.headers["cache-control"] == "no-store"
    text = r.text.split('id="new-token">')[1].split("<")[0]
    again = (await c.get("/ui/admin")).text
    assert text not in again and "S1" in again  # listed, without its secret
    stored = await cloud.sql("SELECT token_id, created_by FROM enroll_tokens")
    assert len(stored) == 1 and stored[0]["created_by"] == "web:root"
    r = await c.post("/ui/admin/hubs/H1/rotate", data={"csrf_token": token})
    assert r.status_code == 303 and "ok=H1" in r.headers["location"]
    assert await cloud.sql("SELECT 1 FROM audit_log WHERE action = 'hub.rotate.request' AND actor = 'web:root'")
    r = await c.post("/ui/admin/hubs/nope/rotate", data={"csrf_token": token})
    assert "error=" in r.headers["location"]


async def test_devices_are_added_to_a_station_by_name_and_removed_with_a_reason(admin: Any) -> None:
    cloud, c = admin
    token = csrf_from((await c.get("/ui/admin/devices")).text)
    form = {"hub_id": "H1", "station": "一诊室", "kind": "ble-bp", "address": "AA:BB:CC:DD:EE:01", "label": "BP",
            "csrf_token": token}
    r = await c.post("/ui/admin/devices", data=form)
    assert "ok=" in r.headers["location"], r.headers["location"]
    r = await c.post("/ui/admin/devices", data={**form, "kind": "ble-thermometer", "address": "AA:BB:CC:DD:EE:02"})
    assert "ok=" in r.headers["location"], r.headers["location"]
    stations = await cloud.sql("SELECT DISTINCT station FROM device_inventory")
    assert len(stations) == 1  # the same name is the same station
    assert await cloud.sql("SELECT 1 FROM stations WHERE hub_id = 'H1' AND name = '一诊室'")
    # the name travels to the hub in its configuration document (provisioning.inventory.StationConfig.name)
    assert await sql_stores(cloud.state.db).devices.station_names("H1") == {stations[0]["station"]: "一诊室"}
    page = (await c.get("/ui/admin/devices")).text
    row = page.split('id="device-H1-s')[1].split("</tr>")[0]
    assert "一诊室" in row and "AA:BB:CC:DD:EE:01" in row and "已配置但未连接" in row
    assert 'class="on"' in page.split('/admin/devices"')[1][:20]  # the nav marks 设备
    for bad in ({"address": "not-a-mac"}, {"station": "  "}, {"hub_id": "nope"}):
        refused = await c.post("/ui/admin/devices", data={**form, **bad}, follow_redirects=True)
        assert 'class="flash error"' in refused.text and "<details>" in refused.text
    device_id = (await cloud.sql("SELECT device_id FROM device_inventory WHERE kind = 'ble-bp'"))[0]["device_id"]
    confirm = (await c.get("/ui/admin/devices", params={"remove_hub": "H1", "remove_device": device_id})).text
    assert 'id="confirm-remove"' in confirm and f"/admin/devices/H1/{device_id}/remove" in confirm
    r = await c.post(f"/ui/admin/devices/H1/{device_id}/remove", data={"reason": " ", "csrf_token": token},
                     follow_redirects=True)
    assert "请填写原因" in r.text
    assert await cloud.sql("SELECT 1 FROM device_inventory WHERE device_id = $1", device_id)
    r = await c.post(f"/ui/admin/devices/H1/{device_id}/remove", data={"reason": "送修", "csrf_token": token})
    assert "ok=" in r.headers["location"]
    assert not await cloud.sql("SELECT 1 FROM device_inventory WHERE device_id = $1", device_id)
    rows = await cloud.sql("SELECT actor, reason FROM audit_log WHERE action = 'device.remove'")
    assert [(x["actor"], x["reason"]) for x in rows] == [("web:root", "送修")]


async def test_devices_page_merges_the_inventory_with_what_hubs_report(admin: Any) -> None:
    """Issue 20: once one device was added, the devices the hubs report were hidden."""
    cloud, c = admin
    token = csrf_from((await c.get("/ui/admin/devices")).text)
    reported = await cloud.sql("SELECT device_id, station_id FROM devices WHERE hub_id = 'H1'")
    assert reported
    for address in ("AA:BB:CC:DD:EE:01", "AA:BB:CC:DD:EE:02"):
        r = await c.post("/ui/admin/devices", data={"hub_id": "H1", "station": "二诊室", "kind": "ble-bp",
                                                    "address": address, "csrf_token": token})
        assert "ok=" in r.headers["location"]
    up, down = [r["device_id"] for r in await cloud.sql("SELECT device_id FROM device_inventory ORDER BY device_id")]
    await cloud.sql("UPDATE hubs SET telemetry = $1, devices_down = $2 WHERE hub_id = 'H1'",
                    json.dumps({"devices": {up: "connected", down: "disconnected"}}), down)
    page = (await c.get("/ui/admin/devices")).text

    def state(device_id: str) -> str:
        return page.split(f'id="device-H1-{device_id}"')[1].split(">")[0]

    assert "reporting" in state(up) and "not_connected" in state(down)
    for r in reported:  # still listed, marked as reported but not configured, with their station
        assert "not_configured" in state(r["device_id"])
    assert "网关上报，云端未配置" in page and "首次出现" in page
    en = (await c.get("/ui/admin/devices?lang=en")).text
    assert "reported by the hub, not configured" in en and "configured but not connected" in en


async def test_audit_log_viewer_filters(admin: Any) -> None:
    _, c = admin
    await c.get("/ui/dashboard/unmatched")  # a view of patient data
    r = await c.get("/ui/admin/audit", params={"action": "view."})
    assert "view.unmatched" in r.text and "hub.register" not in r.text
    r = await c.get("/ui/admin/audit", params={"hub": "H1"})
    assert "hub.register" in r.text
    assert (await c.get("/ui/admin/audit", params={"actor": "' OR ''='"})).status_code == 200


async def test_auditor_reads_the_audit_log_only(admin: Any) -> None:
    cloud, _ = admin
    secret = await cloud.user("aud", "auditor")
    async with cloud.client() as c:
        r = await sign_in(c, "aud", secret)
        assert r.headers["location"] == "/ui/"
        home = await c.get("/ui/")
        assert home.headers["location"] == "/ui/admin/audit"
        assert (await c.get("/ui/admin/audit")).status_code == 200
        assert (await c.get("/ui/dashboard")).status_code == 403



async def test_hub_list_shows_desired_vs_applied_configuration_and_devices_down(admin: Any) -> None:
    """Issue 19 finding 1: the cloud showed nothing while a hub's devices were dead."""
    cloud, c = admin
    await cloud.sql("INSERT INTO hub_config_versions (hub_id, version) VALUES ('H1', 2)")
    await cloud.sql("UPDATE hubs SET config_applied = 1, devices_down = 's1-bp,s1-hw' WHERE hub_id = 'H1'")
    row = (await c.get("/ui/admin")).text.split('id="hub-H1"')[1].split("</tr>")[0]
    assert "云端版本 2" in row and "已应用版本 1" in row and "尚未应用" in row
    assert 'role="alert">已配置但未连接: s1-bp, s1-hw<' in row
    await cloud.sql("UPDATE hubs SET config_applied = 2, devices_down = '' WHERE hub_id = 'H1'")
    row = (await c.get("/ui/admin")).text.split('id="hub-H1"')[1].split("</tr>")[0]
    assert "已应用版本 2" in row and "尚未应用" not in row and "已配置但未连接" not in row
