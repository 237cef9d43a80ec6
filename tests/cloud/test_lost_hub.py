"""docs/operations.md's lost-hub procedure, end to end: every credential of the hub goes.

A real cloud (HTTP), a real Mosquitto (hubs log in with a password on one listener, the
cloud on its own), a hub enrolled with a token. The admin runs the documented command,
``mchub cloud hub revoke --id … --reason …``, as a separate process; then the hub's
batches, configuration fetch and key rotation are refused (403), its MQTT login is
refused, the signed ``revoke`` command reached its live session, and no command can be
sent to it any more. The older ``/admin/v1`` door revokes the same way (one registry).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import aiomqtt
import pytest

from firmware_sim.fleet import CloudKeys, VirtualHub
from protocol.commands import topic, verify_command
from protocol.ids import now_ms
from protocol.keys import SuiteId
from provisioning import hubside
from provisioning.client import HttpClient
from provisioning.errors import ClientError
from tests.cloud.fleet_support import add_user, call, login, make_prov_cloud
from tests.cloud.support import TOKEN, serving
from tests.support.services import MosquittoServer, _service_user, free_port, wait_for_port
from tests.support.waiting import HANG_S, until

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.mqtt


class SplitMosquitto(MosquittoServer):
    """One broker, two doors: hubs log in with the password file; the cloud's own listener is private."""

    def __init__(self) -> None:
        super().__init__()
        self.cloud_port = free_port()
        self.passwords = self.base / "passwords"

    def start(self) -> SplitMosquitto:
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        self.passwords.write_text("")
        os.chmod(self.passwords, 0o644)
        conf = self.base / "mosquitto.conf"
        conf.write_text("per_listener_settings true\npersistence false\nlog_dest stderr\n"
                        f"listener {self.cloud_port} 127.0.0.1\nallow_anonymous true\n"
                        f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {self.passwords}\n")
        os.chmod(conf, 0o644)
        log = open(self.base / "log", "wb")  # noqa: SIM115 - lives as long as the broker
        self.proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                     user=_service_user("mosquitto"))
        wait_for_port(self.port, proc=self.proc)
        wait_for_port(self.cloud_port, proc=self.proc)
        return self


async def can_login(port: int, username: str, password: str) -> bool:
    try:
        async with aiomqtt.Client("127.0.0.1", port, username=username, password=password, timeout=10):
            return True
    except aiomqtt.MqttError:
        return False


async def login_becomes(port: int, username: str, password: str, want: bool) -> None:
    async def reached() -> bool:  # the broker re-reads its password file asynchronously after SIGHUP
        return await can_login(port, username, password) is want

    await until(reached, f"the MQTT login of {username} becoming {want}", interval=0.1)


def mchub_cloud(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mchub", "cloud", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO), "USER": "admin-li"}, timeout=120, check=False)


def virtual(state: hubside.HubState) -> VirtualHub:
    hub = VirtualHub(state.identity.hub_id, CloudKeys(state.cloud.recipient(SuiteId.X25519_AES256GCM),
                                                      state.cloud.signing_key))
    hub.key = state.key
    return hub


async def post(url: str, batch: bytes) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}/api/v1/batches", data=batch) as resp:
        if resp.status == 200:
            return 200, ""  # a signed binary ack
        return resp.status, str((await resp.json(content_type=None)).get("reason", ""))


async def next_command(client: aiomqtt.Client, timeout_s: float = HANG_S) -> bytes:
    async with asyncio.timeout(timeout_s):
        async for message in client.messages:
            return bytes(message.payload)  # type: ignore[arg-type]
    raise AssertionError("the broker closed the hub's session before any command arrived")


async def enroll(alice: HttpClient, url: str, state_dir: Path) -> hubside.HubState:
    token = (await call(alice, "POST", "/api/v1/admin/tokens", {"site_id": "dongcheng"}))["token"]
    return await asyncio.to_thread(hubside.enroll, url, token, state_dir, hub_serial=state_dir.name)


async def test_the_documented_lost_hub_procedure_revokes_every_credential(tmp_path: Path) -> None:
    broker = SplitMosquitto().start()
    try:
        assert broker.proc is not None
        prov = make_prov_cloud(
            tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}",
            f'mqtt_password_file = "{broker.passwords}"\nmqtt_reload_command = ["kill", "-HUP", "{broker.proc.pid}"]\n'
            f"[mqtt]\nenabled = true\nport = {broker.cloud_port}\n")
        await add_user(prov, "alice", "admin")
        async with serving(prov.cfg) as url:
            alice = await login(prov, url, "alice")
            await call(alice, "POST", "/api/v1/admin/sites", {"site_id": "dongcheng", "name": "东城"})
            lost = await enroll(alice, url, tmp_path / "PI-0001")
            other = await enroll(alice, url, tmp_path / "PI-0002")
            hub_id, creds = lost.identity.hub_id, lost.mqtt
            await login_becomes(broker.port, creds.username, creds.password, True)
            hub = virtual(lost)
            hub.add_visit()
            assert (await post(url, hub.seal_from(1) or b""))[0] == 200
            hub.acked = 6

            async with aiomqtt.Client("127.0.0.1", broker.port, username=creds.username, password=creds.password,
                                      identifier=f"hub-{hub_id}", timeout=10) as session:
                await session.subscribe(topic(hub_id, "commands"), qos=1)
                # the procedure of docs/operations.md, as the admin types it
                done = mchub_cloud(prov.cfg.path.parent, "hub", "revoke", "--id", hub_id, "--reason", "设备丢失")
                assert done.returncode == 0, done.stderr
                assert "removed from the broker's password file" in done.stdout, done.stdout
                assert "pushed to the hub over MQTT" in done.stdout, done.stdout
                command = verify_command(await next_command(session), prov.keys.signing.public_key(), hub_id,
                                         now_ms())
                assert command.name == "revoke" and command.args["reason"] == "设备丢失"
                with pytest.raises(aiomqtt.MqttError, match="Disconnected"):
                    await next_command(session)  # the broker's reload cut the live session too

            assert f"{creds.username}:" not in broker.passwords.read_text()
            await login_becomes(broker.port, creds.username, creds.password, False)
            hub.add_visit()
            assert await post(url, hub.seal_from(7) or b"") == (403, "revoked")
            for attempt in (lambda: hubside.fetch_config(lost), lambda: hubside.rotate(tmp_path / "PI-0001")):
                with pytest.raises(ClientError) as err:
                    await asyncio.to_thread(attempt)
                assert (err.value.http_status, err.value.remote_reason) == (403, "revoked")
            refused = mchub_cloud(prov.cfg.path.parent, "command", "--hub", hub_id, "sync-now")
            assert refused.returncode == 2 and "revoked" in refused.stderr, refused.stderr
            with pytest.raises(ClientError) as err:
                await call(alice, "POST", f"/api/v1/admin/hubs/{hub_id}/rotate")
            assert err.value.http_status == 403
            entries = (await call(alice, "GET", f"/api/v1/admin/audit?target={hub_id}"))["entries"]
            assert any(e["action"] == "hub.revoke" and e["actor"] == "cli:admin-li" for e in entries)

            # the bearer-token door (/admin/v1, used by scripts) goes through the same registry
            await login_becomes(broker.port, other.mqtt.username, other.mqtt.password, True)
            async with aiohttp.ClientSession() as http, http.post(
                    f"{url}/admin/v1/hubs/{other.identity.hub_id}/revoke", json={"reason": "stolen"},
                    headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 200, await resp.text()
            await login_becomes(broker.port, other.mqtt.username, other.mqtt.password, False)
            second = virtual(other)
            second.add_visit()
            assert await post(url, second.seal_from(1) or b"") == (403, "revoked")
    finally:
        broker.destroy()
