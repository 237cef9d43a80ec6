"""Hub presence over a real Mosquitto broker: status (incl. last-will) and telemetry reach the
registry; commands are signed with the cloud key and verify on the hub side."""

from __future__ import annotations

import asyncio
import contextlib

import aiomqtt
import msgspec
import pytest

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.fleet.mqtt import publish_command, run_listener
from protocol.commands import HubStatus, Telemetry, topic, verify_command
from protocol.ids import now_ms
from tests.cloud.support import ensure_site, fleet_on, hub, register_hub
from tests.support.waiting import HANG_S, until

pytestmark = pytest.mark.mqtt


async def _hub_row(db: Database) -> tuple:  # type: ignore[type-arg]
    async with db.transaction() as tx:
        return tuple(await tx.fetchrow("SELECT online, queue_depth, version FROM hubs WHERE hub_id = 'HM'"))


async def _until(db: Database, want: tuple) -> None:  # type: ignore[type-arg]
    async def reached() -> bool:
        return await _hub_row(db) == want

    await until(reached, f"hub row {want}")


async def test_status_telemetry_and_last_will_update_the_registry(sqlite_cloud, mosquitto) -> None:
    cfg, keys = sqlite_cloud
    db = await Database.connect(cfg.database.url)
    await migrate(db)
    h = hub(keys, "HM")
    await ensure_site(db, "S1")
    await register_hub(db, "HM", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
    stop = asyncio.Event()
    listener = asyncio.create_task(run_listener(db, "127.0.0.1", mosquitto.port, stop))
    will = aiomqtt.Will(topic("HM", "status"), msgspec.json.encode(HubStatus(online=False)), qos=1, retain=True)
    hub_client = aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hub-HM", will=will)
    await hub_client.__aenter__()
    await hub_client.publish(topic("HM", "status"), msgspec.json.encode(HubStatus(online=True, version="0.1.0")),
                             qos=1, retain=True)
    await _until(db, (1, None, "0.1.0"))
    tm = Telemetry(at_ms=now_ms(), queue_depth=42, oldest_unsynced_age_s=3.5, last_sync_ms=now_ms(),
                   devices={"bp1": "connected"}, disk_free_bytes=10**9, version="0.1.0")
    await hub_client.publish(topic("HM", "telemetry"), msgspec.json.encode(tm))
    await hub_client.publish(topic("HM", "telemetry"), b"{not json")  # logged and ignored
    await _until(db, (1, 42, "0.1.0"))
    hub_client._client._sock.close()  # the hub loses power: the broker publishes its last will
    await _until(db, (0, 42, "0.1.0"))
    with contextlib.suppress(Exception):
        await asyncio.wait_for(hub_client.__aexit__(None, None, None), 0.5)
    stop.set()
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    await db.close()


async def test_commands_are_signed_by_the_cloud_and_verify_on_the_hub(sqlite_cloud, mosquitto) -> None:
    _, keys = sqlite_cloud
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hub-HC") as client:
        await client.subscribe(topic("HC", "commands"), qos=1)
        sent = await publish_command("127.0.0.1", mosquitto.port, keys.signing, "HC", "sync-now")
        message = await asyncio.wait_for(anext(aiter(client.messages)), HANG_S)
    body = verify_command(message.payload, keys.signing.public_key(), "HC", now_ms())  # type: ignore[arg-type]
    assert body == sent and body.name == "sync-now"


async def test_a_served_worker_runs_the_presence_listener(tmp_path, mosquitto) -> None:
    from tests.cloud.support import make_cloud, serving

    cfg, keys = make_cloud(tmp_path / "c", f"sqlite:///{tmp_path / 'c' / 'c.db'}",
                           f"[mqtt]\nenabled = true\nport = {mosquitto.port}\n")
    h = hub(keys, "HS")
    async with serving(cfg):
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "HS", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="hub-HS") as client:
            await client.publish(topic("HS", "status"), msgspec.json.encode(HubStatus(online=True, version="9")),
                                 qos=1, retain=True)
        async def online() -> bool:
            async with fleet_on(cfg) as fleet:
                (info,) = await fleet.hub_infos()
            return info.online

        await until(online, "the hub shown online")
