"""The provisioning routes of the real cloud app (docs/admin-api.md): admin login and roles, enrollment,
device inventory, rotation and revocation seen by batch ingest — over HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from firmware_sim.fleet import CloudKeys, VirtualHub
from protocol.keys import SuiteId
from provisioning import hubside
from provisioning.client import HttpClient
from provisioning.enrollment import build_request
from provisioning.errors import ClientError
from provisioning.tokens import new_token
from tests.cloud.fleet_support import ProvCloud, add_user, call, login, make_prov_cloud
from tests.cloud.support import make_cloud, serving


@pytest.fixture(params=["sqlite", "postgres"])
def prov(request: pytest.FixtureRequest, tmp_path: Path) -> ProvCloud:
    url = (f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("pg_dsn")))
    return make_prov_cloud(tmp_path / "cloud", url)


async def refused(client: HttpClient, method: str, path: str, body: object = None) -> tuple[int, str]:
    with pytest.raises(ClientError) as err:
        await call(client, method, path, body)
    return err.value.http_status, err.value.remote_reason


def virtual(state: hubside.HubState) -> VirtualHub:
    hub = VirtualHub(state.identity.hub_id, CloudKeys(state.cloud.recipient(SuiteId.X25519_AES256GCM),
                                                      state.cloud.signing_key))
    hub.key = state.key
    return hub


async def post(url: str, batch: bytes) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/v1/batches", data=batch) as resp:
        await resp.read()
        return resp.status, dict(resp.headers)


async def test_admin_login_roles_sites_and_tokens(prov: ProvCloud) -> None:
    await add_user(prov, "alice", "admin")
    await add_user(prov, "carol", "clinic_staff")
    async with serving(prov.cfg) as url:
        anonymous = HttpClient(url)
        assert await refused(anonymous, "GET", "/api/v1/admin/hubs") == (401, "unauthorized")
        assert await refused(anonymous, "POST", "/api/v1/admin/login",
                             {"username": "alice", "password": "Correct-Horse-9", "code": "000000"}) \
            == (401, "unauthorized")
        alice = await login(prov, url, "alice")
        site = await call(alice, "POST", "/api/v1/admin/sites", {"site_id": "dongcheng", "name": "东城社区中心"})
        assert site["site_id"] == "dongcheng"
        assert await refused(alice, "POST", "/api/v1/admin/sites", {"site_id": "dongcheng", "name": "x"}) \
            == (409, "conflict")
        token = await call(alice, "POST", "/api/v1/admin/tokens", {"site_id": "dongcheng", "expires_in_s": 3600})
        listed = (await call(alice, "GET", "/api/v1/admin/tokens?site=dongcheng"))["tokens"]
        assert [t["token_id"] for t in listed] == [token["token_id"]] and "digest" not in listed[0]
        carol = await login(prov, url, "carol")
        assert [s["site_id"] for s in (await call(carol, "GET", "/api/v1/admin/sites"))["sites"]] == ["dongcheng"]
        assert await refused(carol, "POST", "/api/v1/admin/tokens", {"site_id": "dongcheng"}) == (403, "forbidden")
        assert await refused(carol, "GET", "/api/v1/admin/audit") == (403, "forbidden")
        await call(alice, "POST", "/api/v1/admin/logout")
        assert await refused(alice, "GET", "/api/v1/admin/sites") == (401, "unauthorized")


async def test_enroll_sync_devices_rotate_revoke_over_http(prov: ProvCloud, tmp_path: Path) -> None:
    await add_user(prov, "alice", "admin")
    async with serving(prov.cfg) as url:
        alice = await login(prov, url, "alice")
        await call(alice, "POST", "/api/v1/admin/sites", {"site_id": "dongcheng", "name": "东城"})
        await call(alice, "POST", "/api/v1/admin/sites", {"site_id": "xicheng", "name": "西城"})
        token = (await call(alice, "POST", "/api/v1/admin/tokens", {"site_id": "dongcheng"}))["token"]
        state_dir = tmp_path / "hub"
        state = await asyncio.to_thread(hubside.enroll, url, token, state_dir, hub_serial="PI-0001")
        assert state.identity.hub_id == "dongcheng-h01" and (state_dir / "hub.pem").stat().st_mode & 0o077 == 0
        again = await asyncio.to_thread(hubside.enroll, url, token, state_dir, hub_serial="PI-0001")  # re-run: safe
        assert again.identity.hub_id == "dongcheng-h01"
        other = HttpClient(url)
        stranger = build_request(ed25519.Ed25519PrivateKey.generate(), token, "PI-0002")
        assert await refused(other, "POST", "/api/v1/enroll", stranger) == (403, "token_used")
        wrong_site = (await call(alice, "POST", "/api/v1/admin/tokens", {"site_id": "dongcheng"}))["token"]
        request = build_request(ed25519.Ed25519PrivateKey.generate(), wrong_site, "PI-0003", site_id="xicheng")
        assert await refused(other, "POST", "/api/v1/enroll", request) == (403, "token_wrong_site")

        hub = virtual(state)
        hub.add_visit()
        status, headers = await post(url, hub.seal_from(1) or b"")
        assert status == 200 and headers["x-mchub-config-version"] == "0"
        hub.acked = 6
        added = await call(alice, "POST", "/api/v1/admin/hubs/dongcheng-h01/devices",
                           {"station": 1, "kind": "ble-bp", "address": "aa:bb:cc:dd:ee:ff", "label": "诊室1 血压计"})
        assert added["version"] == 1 and added["pushed"] is False and added["device"]["address"] == "AA:BB:CC:DD:EE:FF"
        hub.add_visit()
        status, headers = await post(url, hub.seal_from(7) or b"")
        assert status == 200 and headers["x-mchub-config-version"] == "1"  # the hub fetches the new configuration
        _, config = await asyncio.to_thread(hubside.fetch_config, state)
        assert config.version == 1 and config.stations[0].devices[0].label == "诊室1 血压计"

        old_key = state.key
        await asyncio.to_thread(hubside.rotate, state_dir)
        rotated = hubside.load_state(state_dir)
        assert rotated.key.public_key() != old_key.public_key()
        hub.add_visit()
        assert (await post(url, hub.seal_from(13) or b""))[0] == 200  # sealed with the old key: overlap
        hub.key = rotated.key
        hub.add_visit()
        assert (await post(url, hub.seal_from(19) or b""))[0] == 200  # new key
        row = await call(alice, "GET", "/api/v1/admin/hubs/dongcheng-h01")
        assert row["keys"] == 2 and row["status"] == "active"

        revoked = await call(alice, "POST", "/api/v1/admin/hubs/dongcheng-h01/revoke", {"reason": "设备丢失"})
        assert revoked["status"] == "revoked"
        hub.add_visit()
        assert (await post(url, hub.seal_from(25) or b""))[0] == 403
        with pytest.raises(ClientError) as err:
            await asyncio.to_thread(hubside.fetch_config, rotated)
        assert (err.value.http_status, err.value.remote_reason) == (403, "revoked")
        with pytest.raises(ClientError) as err:
            await asyncio.to_thread(hubside.rotate, state_dir)
        assert err.value.http_status == 403
        actions = [e["action"] for e in (await call(alice, "GET", "/api/v1/admin/audit?target=dongcheng-h01"))
                   ["entries"]]
        for step in ("hub.enroll", "hub.enroll.repeat", "device.add", "hub.rotate", "hub.revoke"):
            assert step in actions, (step, actions)


async def test_enrollment_is_refused_clearly_when_provisioning_is_off(tmp_path: Path) -> None:
    cfg, _ = make_cloud(tmp_path, f"sqlite:///{tmp_path / 'c.db'}")
    assert cfg.provisioning.ca_dir is None
    async with serving(cfg) as url:
        request = build_request(ed25519.Ed25519PrivateKey.generate(), new_token().text, "PI-1")
        assert await refused(HttpClient(url), "POST", "/api/v1/enroll", request) == (404, "provisioning_disabled")
        for _ in range(9):  # 10 attempts a minute from one address, then a clear refusal
            await refused(HttpClient(url), "POST", "/api/v1/enroll", request)
        assert await refused(HttpClient(url), "POST", "/api/v1/enroll", request) == (429, "rate_limited")
