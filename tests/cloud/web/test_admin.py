"""The admin console: sites, hubs (revoke), users and roles, audit log viewer, registers slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provisioning.admin import SITE_ID_PATTERN
from tests.cloud.support import make_cloud
from tests.cloud.web.support import PASSWORD, WEB, csrf_from, running, seed, sign_in


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
    assert "机构编号" in upper.text and "s001" in upper.text
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
    assert r.status_code == 200 and 'id="totp-secret"' in r.text
    secret = r.text.split('id="totp-secret">')[1].split("<")[0]
    assert secret not in (await c.get("/ui/admin/users")).text  # shown once
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


async def test_devices_are_added_to_a_station_and_removed(admin: Any) -> None:
    cloud, c = admin
    token = csrf_from((await c.get("/ui/admin/devices")).text)
    form = {"hub_id": "H1", "station": "2", "kind": "ble-bp", "address": "AA:BB:CC:DD:EE:01", "label": "BP",
            "csrf_token": token}
    r = await c.post("/ui/admin/devices", data=form)
    assert "ok=" in r.headers["location"], r.headers["location"]
    page = (await c.get("/ui/admin/devices")).text
    assert "AA:BB:CC:DD:EE:01" in page
    bad = await c.post("/ui/admin/devices", data={**form, "address": "not-a-mac"})
    assert "error=" in bad.headers["location"]
    device_id = (await cloud.sql("SELECT device_id FROM device_inventory"))[0]["device_id"]
    r = await c.post(f"/ui/admin/devices/H1/{device_id}/remove", data={"csrf_token": token})
    assert "ok=" in r.headers["location"]
    assert not await cloud.sql("SELECT 1 FROM device_inventory")


async def test_audit_log_viewer_filters(admin: Any) -> None:
    _, c = admin
    await c.get("/ui/dashboard/unmatched")  # a view of patient data
    r = await c.get("/ui/admin/audit", params={"action": "view."})
    assert "view.unmatched" in r.text and "hub.register" not in r.text
    r = await c.get("/ui/admin/audit", params={"hub": "H1"})
    assert "hub.register" in r.text
    assert (await c.get("/ui/admin/audit", params={"actor": "' OR ''='"})).status_code == 200


async def test_devices_per_station(admin: Any) -> None:
    _, c = admin
    r = await c.get("/ui/admin/devices")
    assert r.status_code == 200 and "H1" in r.text and "-bp" in r.text


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
