"""The cloud keeps a real Mosquitto's password_file in step with enrollments and revocations."""

from __future__ import annotations

from pathlib import Path

import aiomqtt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.fleet.service import Fleet, load_authority
from provisioning.enrollment import build_request
from tests.cloud.fleet_support import make_prov_cloud
from tests.provisioning.test_hubs import AuthMosquitto
from tests.support.waiting import until


async def can_login(port: int, username: str, password: str) -> bool:
    try:
        async with aiomqtt.Client("127.0.0.1", port, username=username, password=password, timeout=10):
            return True
    except aiomqtt.MqttError:
        return False


async def eventually(port: int, username: str, password: str, want: bool) -> None:
    async def reached() -> bool:  # the broker reloads asynchronously after SIGHUP
        return await can_login(port, username, password) is want

    await until(reached, f"login of {username} becoming {want}", interval=0.1)


@pytest.mark.mqtt
async def test_enrollment_opens_and_revocation_closes_the_broker_login(tmp_path: Path) -> None:
    broker = AuthMosquitto("")
    broker.start()
    try:
        prov = make_prov_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}")
        db = await Database.connect(prov.cfg.database.url)
        await migrate(db)
        assert broker.proc is not None
        fleet = Fleet(db, load_authority(prov.cfg, prov.keys), prov.keys.signing,
                      broker_passwords=broker.base / "passwords",
                      broker_reload=("kill", "-HUP", str(broker.proc.pid)))
        await fleet.add_site("alice", "dongcheng", "东城")
        token = (await fleet.create_token("alice", "dongcheng")).text
        answer = await fleet.enroll(build_request(ed25519.Ed25519PrivateKey.generate(), token, "PI-1"))
        creds = answer.mqtt
        assert (broker.base / "passwords").read_text().startswith(f"{creds.username}:$7$")
        await eventually(broker.port, creds.username, creds.password, True)
        await fleet.revoke("alice", answer.hub_id, "stolen")
        assert (broker.base / "passwords").read_text() == ""
        await eventually(broker.port, creds.username, creds.password, False)
        await db.close()
    finally:
        broker.destroy()
