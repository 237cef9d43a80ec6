"""The hub's MQTT client against a real Mosquitto, with aiomqtt and mosquitto_pub as the other side,
and against sockets that break the protocol."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from drivers.mqtt.client import Message, MqttClient, MqttError, Will
from tests.support.services import MosquittoServer, free_port
from tests.support.waiting import HANG_S, until

pytestmark = pytest.mark.mqtt


async def _next(client: MqttClient) -> Message:
    async with asyncio.timeout(HANG_S):
        async for message in client.messages():
            return message
    raise AssertionError("the connection ended")


async def test_qos1_both_ways_with_a_third_party_client(mosquitto: MosquittoServer) -> None:
    async with (MqttClient("127.0.0.1", mosquitto.port, client_id="hub-qos1") as hub,
                aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="peer-qos1") as peer):
        assert await hub.subscribe("t/qos1/in", qos=1) == 1
        await peer.subscribe("t/qos1/out", qos=1)
        await peer.publish("t/qos1/in", "测量 1".encode(), qos=1)
        got = await _next(hub)
        assert (got.topic, got.payload, got.qos) == ("t/qos1/in", "测量 1".encode(), 1)
        await hub.publish("t/qos1/out", b"reply", qos=1)  # returns once the broker has the PUBACK sent
        async with asyncio.timeout(HANG_S):
            async for message in peer.messages:
                assert (str(message.topic), message.payload, message.qos) == ("t/qos1/out", b"reply", 1)
                break


async def test_the_will_is_published_when_the_connection_is_lost_not_on_a_clean_close(
        mosquitto: MosquittoServer) -> None:
    will = Will("t/will/status", b'{"online":false}', qos=1, retain=True)
    async with MqttClient("127.0.0.1", mosquitto.port, client_id="hub-will-clean", will=will) as hub:
        await hub.publish("t/will/status", b'{"online":true}', qos=1, retain=True)
    assert await _retained(mosquitto, "t/will/status") == b'{"online":true}'  # clean close: no will

    hub = MqttClient("127.0.0.1", mosquitto.port, client_id="hub-will-lost", will=will)
    await hub.connect()
    assert hub._writer is not None
    hub._writer.transport.abort()  # the power goes: no DISCONNECT

    async def offline() -> bool:
        return await _retained(mosquitto, "t/will/status") == b'{"online":false}'

    await until(offline, "the will published", interval=0.05)
    await hub.close()


async def _retained(mosquitto: MosquittoServer, topic: str) -> bytes:
    """The retained message on ``topic``, as a new subscriber gets it."""
    async with MqttClient("127.0.0.1", mosquitto.port, client_id="reader") as reader:
        await reader.subscribe(topic, qos=1)
        message = await _next(reader)
        assert message.retain
        return message.payload


async def test_an_unacknowledged_message_comes_again_in_a_persistent_session(mosquitto: MosquittoServer) -> None:
    def client() -> MqttClient:
        return MqttClient("127.0.0.1", mosquitto.port, client_id="hub-persistent", clean_session=False,
                          auto_ack=False)

    async with client() as hub:
        await hub.subscribe("t/persistent", qos=1)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="device-persistent") as device:
        await device.publish("t/persistent", b"seq 1", qos=1)  # while the hub is away
    async with client() as hub:
        assert hub.session_present
        first = await _next(hub)  # not acknowledged: the hub "crashes" before storing it
    async with client() as hub:
        again = await _next(hub)
        assert (again.payload, again.dup) == (b"seq 1", True)
        await hub.ack(again)
    async with client() as hub:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await _next(hub)
    assert first.payload == b"seq 1"


async def test_a_flood_of_qos0_messages_is_capped_while_the_hub_is_busy(mosquitto: MosquittoServer,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    pub = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
    async with MqttClient("127.0.0.1", mosquitto.port, client_id="hub-flood", max_queued=5) as hub:
        await hub.subscribe("t/flood", qos=0)
        proc = await asyncio.create_subprocess_exec(pub, "-p", str(mosquitto.port), "-t", "t/flood", "-q", "0",
                                                    "-l", stdin=subprocess.PIPE)
        await proc.communicate(b"".join(b"m%d\n" % i for i in range(50)))
        await until(lambda: "QoS 0 messages dropped" in caplog.text and hub._queue.qsize() == 5, "the cap")
        got = [(await _next(hub)).payload for _ in range(5)]
        assert got == [b"m0", b"m1", b"m2", b"m3", b"m4"]


async def test_a_refused_and_an_absent_broker_are_mqtt_errors(mosquitto: MosquittoServer) -> None:
    with pytest.raises(MqttError, match="cannot connect"):
        await MqttClient("127.0.0.1", free_port(), client_id="nobody").connect()
    async with _fake_broker(b"\x20\x02\x00\x05") as port:  # CONNACK: not authorized
        with pytest.raises(MqttError, match="refused the connection: not authorized"):
            await MqttClient("127.0.0.1", port, client_id="hub", username="u", password="wrong").connect()


async def test_a_broker_that_stops_answering_pings_ends_the_connection() -> None:
    async with _fake_broker(b"\x20\x02\x00\x00") as port:  # accepts, then never answers
        hub = MqttClient("127.0.0.1", port, client_id="hub", keepalive=1, timeout=0.5)
        await hub.connect()
        with pytest.raises(MqttError, match="did not answer a ping"):
            await _next(hub)
        with pytest.raises(MqttError):
            await hub.publish("t", b"", qos=1)
        await hub.close()


async def test_garbage_from_the_broker_ends_the_connection_with_an_error() -> None:
    # accepted; then a SUBSCRIBE, which only a client sends, as the answer to the hub's SUBSCRIBE
    async with (_fake_broker(b"\x20\x02\x00\x00", b"\x82\x02\x00\x01") as port,
                MqttClient("127.0.0.1", port, client_id="hub") as hub):
        with pytest.raises(MqttError, match="broke: a broker does not send packet type 8"):
            await hub.subscribe("t/x")
        with pytest.raises(MqttError, match="broke"):
            await _next(hub)


@contextlib.asynccontextmanager
async def _fake_broker(*answers: bytes) -> AsyncIterator[int]:
    """A TCP server that answers each packet it reads with the next of ``answers``, then only reads."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await reader.read(1000)
            writer.write(answer)
        with contextlib.suppress(OSError):
            while await reader.read(1000):
                pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
