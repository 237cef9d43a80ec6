"""Revocation, hub listing and MQTT credentials — including a real Mosquitto broker."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.keys import signing_key_id
from provisioning import mqtt
from provisioning.ca import load_certificate, verify_hub_certificate
from provisioning.errors import CertificateRevoked, HubRevoked, NotFound, ProvisioningError
from provisioning.hubs import (
    hub_row,
    mqtt_login_allowed,
    mqtt_password_entries,
    resolve_signer,
    revoke_hub,
    revoked_serials,
    touch,
)
from tests.provisioning.conftest import HOUR, NOW, Cloud
from tests.support.services import MosquittoServer, _service_user, free_port, wait_for_port
from tests.support.waiting import until


async def test_revocation_refuses_everything_after_and_keeps_the_record(cloud: Cloud) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    response = await cloud.enroll(key, await cloud.token())
    hub_id = response.hub_id
    hub = await cloud.stores.hubs.get(hub_id)
    assert hub is not None and mqtt_login_allowed(hub, response.mqtt.password)
    await resolve_signer(cloud.stores, hub_id, signing_key_id(key.public_key()), now_ms=NOW + 1)

    revoked = await revoke_hub(cloud.stores, hub_id, actor="alice", reason="设备丢失 lost", now_ms=NOW + HOUR)
    assert revoked.status == "revoked" and revoked.revoked_by == "alice"
    with pytest.raises(HubRevoked):
        await resolve_signer(cloud.stores, hub_id, signing_key_id(key.public_key()), now_ms=NOW + HOUR)
    assert not mqtt_login_allowed(revoked, response.mqtt.password)
    assert mqtt_password_entries(await cloud.stores.hubs.list()) == []
    serials = revoked_serials(await cloud.stores.hubs.list())
    with pytest.raises(CertificateRevoked):
        verify_hub_certificate(load_certificate(response.certificate_pem), cloud.ca.cert, now_ms=NOW + HOUR,
                               revoked_serials=serials)
    entry = cloud.audit.entries[-1]
    assert (entry.action, entry.actor, entry.target, entry.detail["reason"]) == ("hub.revoke", "alice", hub_id,
                                                                                  "设备丢失 lost")
    # idempotent, and the hub row stays for history (its readings stay in the cloud's tables)
    await revoke_hub(cloud.stores, hub_id, actor="bob", reason="again", now_ms=NOW + 2 * HOUR)
    assert cloud.audit.actions().count("hub.revoke") == 1
    assert hub_row(revoked, NOW).status == "revoked" and hub_row(revoked, NOW).keys == 0
    with pytest.raises(NotFound):
        await revoke_hub(cloud.stores, "nobody", actor="alice", reason="", now_ms=NOW)


async def test_hub_row_and_last_seen(cloud: Cloud) -> None:
    response = await cloud.enroll(ed25519.Ed25519PrivateKey.generate(), await cloud.token())
    hub = await cloud.stores.hubs.get(response.hub_id)
    assert hub is not None
    row = hub_row(hub, NOW)
    assert (row.site_id, row.status, row.keys, row.last_seen_ms) == ("dongcheng", "active", 1, NOW)
    assert row.cert_expires_ms == hub.keys[0].not_after_ms
    assert await touch(cloud.stores, hub, now_ms=NOW + 1000) is hub  # throttled, no write
    seen = await touch(cloud.stores, hub, now_ms=NOW + HOUR)
    assert seen.last_seen_ms == NOW + HOUR


def test_hash_matches_mosquitto_passwd(tmp_path: Path) -> None:
    """Third-party vector: a line written by Debian's mosquitto_passwd verifies with our code."""
    binary = shutil.which("mosquitto_passwd")
    assert binary, "apt-get install mosquitto (mosquitto_passwd)"
    subprocess.run([binary, "-c", "-b", str(tmp_path / "pw"), "hub-1", "s3cret-Passw0rd"], check=True)
    user, stored = (tmp_path / "pw").read_text().strip().split(":", 1)
    assert user == "hub-1" and stored.startswith("$7$")
    assert mqtt.verify_password("s3cret-Passw0rd", stored)
    assert not mqtt.verify_password("s3cret-passw0rd", stored)
    with pytest.raises(ProvisioningError):
        mqtt.verify_password("x", "$6$rounds$abc")


class AuthMosquitto(MosquittoServer):
    """A broker that checks a password file written by provisioning.mqtt.password_file."""

    def __init__(self, password_text: str) -> None:
        super().__init__()
        self.password_text = password_text

    def start(self) -> AuthMosquitto:
        os.chmod(self.base, 0o755)
        pw = self.base / "passwords"
        pw.write_text(self.password_text)
        os.chmod(pw, 0o644)
        conf = self.base / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous false\npassword_file {pw}\n"
                        "persistence false\nlog_dest stderr\n")
        os.chmod(conf, 0o644)
        log = open(self.base / "log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c", str(conf)],
                                     stdout=log, stderr=subprocess.STDOUT, user=_service_user("mosquitto"))
        wait_for_port(self.port, proc=self.proc)
        return self


@pytest.fixture
def hub_password() -> str:
    return mqtt.new_password()


@pytest.fixture
def auth_broker(hub_password: str) -> Iterator[AuthMosquitto]:
    text = mqtt.password_file([("dongcheng-h01", mqtt.hash_password(hub_password)),
                               ("dongcheng-h02", mqtt.hash_password(mqtt.new_password()))])
    server = AuthMosquitto(text)
    server.port = free_port()
    server.start()
    yield server
    server.destroy()


@pytest.mark.mqtt
async def test_real_broker_accepts_our_hashes_and_refuses_others(auth_broker: AuthMosquitto, hub_password: str) -> None:
    async with aiomqtt.Client("127.0.0.1", auth_broker.port, username="dongcheng-h01", password=hub_password,
                              timeout=10) as client:
        await client.publish("mchub/hubs/dongcheng-h01/status", b'{"online": true}', qos=1)
    for user, password in (("dongcheng-h01", "wrong"), ("revoked-h09", hub_password)):
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", auth_broker.port, username=user, password=password, timeout=10):
                pass


def test_password_file_refuses_a_username_that_would_break_it() -> None:
    with pytest.raises(ProvisioningError):
        mqtt.password_file([("a:b", "$7$1$x$y")])


@pytest.mark.mqtt
async def test_revocation_reaches_the_broker_on_reload(cloud: Cloud, tmp_path: Path) -> None:
    """Revoke -> rebuild the password file from the hub table -> SIGHUP: the hub's next connection is refused."""
    import signal

    response = await cloud.enroll(ed25519.Ed25519PrivateKey.generate(), await cloud.token())
    creds = response.mqtt
    server = AuthMosquitto(mqtt.password_file(mqtt_password_entries(await cloud.stores.hubs.list())))
    server.start()
    try:
        async with aiomqtt.Client("127.0.0.1", server.port, username=creds.username, password=creds.password,
                                  timeout=10):
            pass
        await revoke_hub(cloud.stores, response.hub_id, actor="alice", reason="stolen", now_ms=NOW + 1)
        text = mqtt.password_file(mqtt_password_entries(await cloud.stores.hubs.list()))
        (server.base / "passwords").write_text(text)
        assert server.proc is not None
        server.proc.send_signal(signal.SIGHUP)
        async def refused() -> bool:  # the reload is asynchronous; poll until the broker applied it
            try:
                async with aiomqtt.Client("127.0.0.1", server.port, username=creds.username,
                                          password=creds.password, timeout=10):
                    return False
            except aiomqtt.MqttError:
                return True

        await until(refused, "the revoked hub's login refused", interval=0.1)
    finally:
        server.destroy()
