"""Command channel and heartbeat over a real Mosquitto broker."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import aiomqtt
import msgspec
import pytest

from edge.commands import CommandChannel
from edge.config import MqttConfig
from protocol.commands import CommandBody, CommandReply, HubStatus, Telemetry, sign_command, topic
from protocol.ids import now_ms, uuid7
from tests.edge.conftest import make_hub_dir
from tests.edge.hubkit import started
from tests.support.refcloud import RefCloud
from tests.support.services import MosquittoServer
from tests.support.waiting import HANG_S, until


def command(cloud: RefCloud, name: str, key=None, cid: str | None = None,  # type: ignore[no-untyped-def]
            hub: str = "clinic-1") -> bytes:
    body = CommandBody(id=cid or uuid7(), hub_id=hub, name=name, issued_ms=now_ms(),  # type: ignore[arg-type]
                       expires_ms=now_ms() + 60_000)
    return sign_command(body, key or cloud.signing)


@pytest.mark.mqtt
async def test_status_telemetry_and_signed_idempotent_commands(tmp_path: Path, refcloud: RefCloud,
                                                               mosquitto: MosquittoServer) -> None:
    cfg = make_hub_dir(tmp_path / "hub", refcloud, stations='[[stations]]\nid = "room-1"\n'
                       f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\ntelemetry_interval_s = 0.2\n')
    hub = await started(cfg)
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="test-cloud") as cloud:
            await cloud.subscribe("mchub/hubs/clinic-1/#", qos=1)
            got: dict[str, list[bytes]] = collections.defaultdict(list)

            async def collect() -> None:
                async for m in cloud.messages:
                    got[str(m.topic).rsplit("/", 1)[1]].append(bytes(m.payload))  # type: ignore[arg-type]

            reader = asyncio.create_task(collect())
            ping_id = uuid7()
            await until(lambda: got["telemetry"], "the hub's first telemetry")
            await cloud.publish(topic("clinic-1", "commands"), command(refcloud, "ping", cid=ping_id), qos=1)
            await cloud.publish(topic("clinic-1", "commands"), command(refcloud, "ping", cid=ping_id), qos=1)
            from cryptography.hazmat.primitives.asymmetric import ed25519

            forged = command(refcloud, "rotate-key", key=ed25519.Ed25519PrivateKey.generate())
            await cloud.publish(topic("clinic-1", "commands"), forged, qos=1)
            await cloud.publish(topic("clinic-1", "commands"), command(refcloud, "sync-now"), qos=1)
            await until(lambda: len(got["replies"]) >= 3, "three command replies")
            reader.cancel()
    finally:
        await hub.stop()
    status = msgspec.json.decode(got["status"][0], type=HubStatus)
    assert status.online and status.version
    t = msgspec.json.decode(got["telemetry"][0], type=Telemetry)
    assert t.queue_depth == 0 and t.disk_free_bytes > 0
    replies = [msgspec.json.decode(r, type=CommandReply) for r in got["replies"]]
    assert replies[0].id == ping_id and replies[0].ok and replies[0].detail == "pong"
    assert replies[1].id == ping_id and replies[1].duplicate  # executed once only
    assert len(replies) == 3 and replies[2].detail == "sync started"  # the forged command got no reply
    assert (tmp_path / "hub" / "identity" / "hub_ed25519.prev").exists() is False  # forged rotate-key ignored


@pytest.mark.mqtt
async def test_last_will_marks_a_killed_hub_offline_and_commands_rotate_and_reload(
        tmp_path: Path, refcloud: RefCloud, mosquitto: MosquittoServer) -> None:
    import signal

    from tests.edge.test_crash import start_hub

    cfg = make_hub_dir(tmp_path / "hub", refcloud, hub_id="clinic-2", stations='[[stations]]\nid = "room-1"\n'
                       f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n')
    proc = start_hub(cfg, tmp_path / "hub.log")
    statuses: list[HubStatus] = []
    replies: list[CommandReply] = []
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="test-cloud-2") as cloud:
            await cloud.subscribe(topic("clinic-2", "status"), qos=1)
            await cloud.subscribe(topic("clinic-2", "replies"), qos=1)
            async with asyncio.timeout(HANG_S):
                async for m in cloud.messages:
                    if str(m.topic).endswith("/status"):
                        statuses.append(msgspec.json.decode(bytes(m.payload), type=HubStatus))  # type: ignore[arg-type]
                        if statuses[-1].online and len(statuses) == 1:
                            for name in ("rotate-key", "reload-config"):
                                signed = command(refcloud, name, hub="clinic-2")
                                await cloud.publish(topic("clinic-2", "commands"), signed, qos=1)
                        elif not statuses[-1].online:
                            break
                    else:
                        replies.append(msgspec.json.decode(bytes(m.payload), type=CommandReply))  # type: ignore[arg-type]
                        if len(replies) == 2:
                            proc.send_signal(signal.SIGKILL)  # a power cut: the broker publishes the will
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert statuses[0].online and not statuses[-1].online
    assert replies[0].ok and replies[0].detail.startswith("ed25519:")  # the new key, for the cloud to register
    assert (tmp_path / "hub" / "identity" / "hub_ed25519.prev").exists()
    assert replies[1].ok and "reloaded" in replies[1].detail


async def test_a_broker_that_cannot_be_found_is_retried_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    # an empty host (a config mistake): the channel logs it and retries like a lost broker; its task
    # ending would stop the whole hub
    channel = CommandChannel(MqttConfig(host=""), "clinic-1", "test", None, _never, {}, _never)
    task = asyncio.create_task(channel.run())
    try:
        await until(lambda: task.done() or "MQTT broker :1883 unavailable" in caplog.text, "the failure logged")
        assert not task.done(), task.exception()
        assert not channel.connected
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.mqtt
async def test_a_fault_inside_a_session_is_logged_and_the_channel_reconnects(
        caplog: pytest.LogCaptureFixture, mosquitto: MosquittoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    sessions: list[bool] = []

    async def faulty(self: CommandChannel, client: object) -> None:
        sessions.append(self.connected)
        raise RuntimeError("a fault of the hub's own")

    monkeypatch.setattr(CommandChannel, "_session", faulty)
    channel = CommandChannel(MqttConfig(host="127.0.0.1", port=mosquitto.port), "clinic-1", "test", None, _never,
                             {}, _never)
    task = asyncio.create_task(channel.run())
    try:
        await until(lambda: task.done() or len(sessions) >= 2, "a second session after the fault")
        assert not task.done(), task.exception()
        assert sessions == [True, True][:len(sessions)]
        assert f"MQTT session with 127.0.0.1:{mosquitto.port} failed" in caplog.text
        assert "a fault of the hub's own" in caplog.text
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _never(*args: object) -> Telemetry:
    raise AssertionError("never asked")
