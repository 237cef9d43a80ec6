"""Configuration pushes on an enrolled hub as a state machine (issue 19 finding 1).

A real hub (in this test's loop) enrolled over HTTP with the provisioning test peer takes
signed ``apply-config`` documents: version 1 adds a device; version 2 names a driver kind
this hub does not have and is refused *before it is kept* (state "failed", the hub keeps
running version 1, and version 1 is what it would restart with); version 3 adds a second
device while the first keeps its driver task. The state is what the status page, the
telemetry and the batches report.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from edge import config, enrolled
from edge.daemon import Hub
from edge.errors import ConfigError
from protocol.commands import CommandBody
from protocol.ids import now_ms, uuid7
from protocol.keys import RecipientPrivate, SuiteId
from provisioning import admin, hubside
from provisioning.authority import Authority
from provisioning.bundle import CloudKeys
from provisioning.ca import FleetCA
from provisioning.inventory import render_config, sign_config
from provisioning.stores import DeviceRecord
from tests.provisioning.memory import memory_stores
from tests.provisioning.peer import PeerServer, PeerState

HUB_TOML = '[hub]\nidentity_dir = "identity"\ndata_dir = "data"\nlanguage = "en"\n[storage]\nmin_free_mb = 0\n'


@pytest.fixture
def mqttless_peer() -> Iterator[tuple[PeerServer, PeerState, ed25519.Ed25519PrivateKey]]:
    """The provisioning test peer as a cloud without MQTT (no broker URL for hubs)."""
    fleet_ca = FleetCA.create("mchub test fleet CA", now_ms=time.time_ns() // 1_000_000 - 86_400_000)
    recipients = {s: RecipientPrivate.generate(s) for s in SuiteId}
    signing = ed25519.Ed25519PrivateKey.generate()
    keys = CloudKeys(tuple(r.public() for r in recipients.values()), signing.public_key())
    authority = Authority.build(fleet_ca, keys, signing, mqtt_url="", now_ms=time.time_ns() // 1_000_000)
    state = PeerState(memory_stores(), authority, {}, recipients={r.public().key_id: r for r in recipients.values()})
    with PeerServer(state) as server:
        yield server, state, signing


def _command(hub_id: str, version: int, devices: list[DeviceRecord], key: ed25519.Ed25519PrivateKey) -> CommandBody:
    doc = render_config(hub_id=hub_id, site_id="dongcheng", site_name="东城", version=version, devices=devices,
                        now_ms=now_ms())
    return CommandBody(id=uuid7(now_ms()), hub_id=hub_id, name="apply-config", issued_ms=now_ms(),
                       expires_ms=now_ms() + 60_000,
                       args={"config": msgspec.json.encode(sign_config(doc, key)).decode()})


def _bp(hub_id: str, n: int, kind: str = "ble-bp") -> DeviceRecord:
    return DeviceRecord(device_id=f"s1-bp-{n}", hub_id=hub_id, station=1, kind=kind, transport="ble",
                        address=f"AA:BB:CC:DD:EE:0{n}")


async def test_pushes_apply_refuse_before_keeping_and_leave_unchanged_devices_alone(
        mqttless_peer: tuple[PeerServer, PeerState, ed25519.Ed25519PrivateKey], tmp_path: Path) -> None:
    server, state, key = mqttless_peer
    await admin.add_site(state.stores, site_id="dongcheng", name="东城", actor="alice", now_ms=state.clock())
    token = await admin.create_token(state.stores, site_id="dongcheng", actor="alice", now_ms=state.clock())
    (tmp_path / "hub.toml").write_text(HUB_TOML, encoding="utf-8")
    st = await asyncio.to_thread(hubside.enroll, server.url, token.text, tmp_path / "identity", hub_serial="PI-1")
    enrolled.ensure_data_key(tmp_path / "identity")
    hub_id = st.identity.hub_id
    hub = Hub(config.load(tmp_path / "hub.toml"))
    await hub.start(web=False)
    try:
        assert hub.cfg.mqtt is None  # a cloud without MQTT hands out no broker
        assert hub.enrollment is not None and hub.config_status()["state"] == "applied"

        reply = await hub.enrollment.apply(_command(hub_id, 1, [_bp(hub_id, 1)], key))
        assert reply.startswith("configuration version 1 applied") and "1 started" in reply
        first = hub.supervisor._tasks["s1-bp-1"]
        assert hub.config_status() == {"state": "applied", "applied": 1, "desired": 1, "error": None}

        with pytest.raises(ConfigError, match="no driver 'weird-kind'"):
            await hub.enrollment.apply(_command(hub_id, 2, [_bp(hub_id, 1), _bp(hub_id, 2, "weird-kind")], key))
        status = hub.config_status()
        assert status["state"] == "failed" and status["applied"] == 1 and "weird-kind" in status["error"]
        assert hubside.load_state(tmp_path / "identity").config.version == 1  # never kept: a restart runs v1
        assert list(hub.supervisor.health) == ["s1-bp-1"] and hub.supervisor._tasks["s1-bp-1"] is first
        assert hub._sync_report()["X-Mchub-Config-Applied"] == "1"
        assert (await hub.telemetry()).config_error == status["error"]

        reply = await hub.enrollment.apply(_command(hub_id, 3, [_bp(hub_id, 1), _bp(hub_id, 2)], key))
        assert "1 started, 0 stopped, 0 restarted, 1 unchanged" in reply
        assert hub.supervisor._tasks["s1-bp-1"] is first  # the unchanged device was never touched
        assert hub.config_status() == {"state": "applied", "applied": 3, "desired": 3, "error": None}
        again = await hub.enrollment.apply(_command(hub_id, 3, [_bp(hub_id, 1)], key))  # a re-delivery
        assert "is current; nothing to do" in again and list(hub.supervisor.health) == ["s1-bp-1", "s1-bp-2"]
    finally:
        await hub.stop()
