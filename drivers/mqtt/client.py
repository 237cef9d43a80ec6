"""A small asyncio MQTT 3.1.1 client over :mod:`protocol.mqtt_packets`: the hub's only one.

Used by the MQTT device driver (persistent session, QoS 1, PUBACK only after the reading
is stored: ``auto_ack=False`` and :meth:`MqttClient.ack`) and by the command channel
(``edge/commands.py``: a last will, retained status, QoS 1 publishes that wait for PUBACK).

One connection per :class:`MqttClient`; a lost connection ends it with :class:`MqttError`
(raised by :meth:`MqttClient.messages`, and by any publish or subscribe waiting for its
answer), and the caller reconnects with a new one under its own backoff. Within a
connection:

* a reader task feeds the socket's bytes to :class:`~protocol.mqtt_packets.PacketReader`
  (at most ``max_packet`` bytes per packet) and routes each packet;
* a keepalive task sends PINGREQ every ``keepalive`` seconds and ends the connection when
  no PINGRESP comes back within ``timeout`` (3.1.2.10: the broker itself would wait 1.5 x);
* incoming QoS 1 messages are limited by the broker's in-flight window until they are
  acknowledged; QoS 0 messages beyond ``max_queued`` waiting for the caller are dropped with
  a warning (QoS 0 is at most once by definition), so a flooding publisher cannot grow the
  hub's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from drivers.errors import TransportError
from protocol.mqtt_packets import (
    CONNACK_REFUSALS,
    DEFAULT_MAX_PACKET,
    DISCONNECT,
    PINGREQ,
    SUBACK_FAILURE,
    ConnAck,
    MqttPacketError,
    Packet,
    PacketReader,
    PingResp,
    PubAck,
    Publish,
    SubAck,
    Will,
    encode_connect,
    encode_puback,
    encode_publish,
    encode_subscribe,
)

__all__ = ["Message", "MqttClient", "MqttError", "Will"]

log = logging.getLogger(__name__)


class MqttError(TransportError):
    """The broker refused the connection or a subscription, or the connection was lost."""


@dataclass(frozen=True)
class Message:
    """A message the broker delivered."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    packet_id: int  #: 0 for QoS 0
    dup: bool = False  #: a redelivery (3.3.1.1)


class MqttClient:
    """One MQTT connection. ``async with MqttClient(...) as client:`` connects and disconnects cleanly."""

    def __init__(self, host: str, port: int = 1883, *, client_id: str, keepalive: int = 30,
                 clean_session: bool = True, username: str | None = None, password: str | None = None,
                 will: Will | None = None, timeout: float = 10.0, auto_ack: bool = True,
                 max_packet: int = DEFAULT_MAX_PACKET, max_queued: int = 1000) -> None:
        self.host, self.port = host, port
        self.where = f"{host}:{port}"
        self._connect_packet = encode_connect(client_id, keepalive=keepalive, clean_session=clean_session,
                                              username=username, password=password, will=will)
        self.keepalive = keepalive
        self.timeout = timeout
        self.auto_ack = auto_ack
        self.max_queued = max_queued
        self.session_present = False
        self._packets = PacketReader(max_packet)
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._queue: asyncio.Queue[Message | MqttError] = asyncio.Queue()
        self._waiting: dict[int, asyncio.Future[PubAck | SubAck]] = {}
        self._ids = itertools.cycle(range(1, 0x10000))
        self._pong = asyncio.Event()
        self._failed: MqttError | None = None
        self._dropped = 0

    async def __aenter__(self) -> MqttClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the connection and wait for CONNACK; :class:`MqttError` when that fails or is refused."""
        try:
            async with asyncio.timeout(self.timeout):
                reader, self._writer = await asyncio.open_connection(self.host, self.port)
                self._writer.write(self._connect_packet)
                await self._writer.drain()
                first, *after = await self._first_packets(reader)
        except (OSError, TimeoutError, MqttPacketError) as exc:
            await self._close_transport()
            raise MqttError(f"cannot connect to the MQTT broker {self.where}: {exc or 'no answer'}") from exc
        if not isinstance(first, ConnAck):
            await self._close_transport()
            raise MqttError(f"the MQTT broker {self.where} answered CONNECT with {type(first).__name__}")
        if first.return_code:
            await self._close_transport()
            why = CONNACK_REFUSALS.get(first.return_code, f"return code {first.return_code}")
            raise MqttError(f"the MQTT broker {self.where} refused the connection: {why}")
        self.session_present = first.session_present
        for packet in after:  # a persistent session's queued messages can share CONNACK's segment
            self._route(packet)
        self._tasks = [asyncio.create_task(self._read(reader)), asyncio.create_task(self._keep_alive())]

    async def _first_packets(self, reader: asyncio.StreamReader) -> list[Packet]:
        while True:
            data = await reader.read(65536)
            if not data:
                raise MqttPacketError("the broker closed the connection")
            if packets := self._packets.feed(data):
                return packets

    async def close(self) -> None:
        """Disconnect cleanly (DISCONNECT: the broker discards the will) and stop the connection's tasks."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._failed is None and self._writer is not None:
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(2):
                    self._writer.write(DISCONNECT)
                    await self._writer.drain()
        self._end(MqttError(f"the connection to {self.where} is closed"))
        await self._close_transport()

    async def _close_transport(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(2):
                    await writer.wait_closed()

    def _end(self, error: MqttError) -> None:
        """The connection is over: wake everyone waiting with ``error``."""
        if self._failed is not None:
            return
        self._failed = error
        self._queue.put_nowait(error)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        self._waiting.clear()
        if self._writer is not None:
            self._writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(65536):
                for packet in self._packets.feed(data):
                    self._route(packet)
            error = MqttError(f"the MQTT broker {self.where} closed the connection")
        except (OSError, MqttPacketError) as exc:
            error = MqttError(f"the connection to the MQTT broker {self.where} broke: {exc}")
        except Exception as exc:  # a fault of this client's: end the connection, never leave readers waiting
            log.exception("MQTT %s: reading the connection failed", self.where)
            error = MqttError(f"the connection to the MQTT broker {self.where} failed: {type(exc).__name__}: {exc}")
        self._end(error)

    def _route(self, packet: object) -> None:
        if isinstance(packet, Publish):
            self._deliver(packet)
        elif isinstance(packet, PubAck | SubAck):
            future = self._waiting.pop(packet.packet_id, None)
            if future is not None and not future.done():
                future.set_result(packet)
        elif isinstance(packet, PingResp):
            self._pong.set()
        else:
            raise MqttPacketError(f"unexpected {type(packet).__name__} during the session")

    def _deliver(self, p: Publish) -> None:
        if p.qos == 0 and self._queue.qsize() >= self.max_queued:
            self._dropped += 1
            if self._dropped in (1, 10, 100) or self._dropped % 1000 == 0:
                log.warning("MQTT %s: %d QoS 0 messages dropped, %d are waiting to be handled", self.where,
                            self._dropped, self._queue.qsize())
            return
        self._queue.put_nowait(Message(p.topic, p.payload, p.qos, p.retain, p.packet_id, p.dup))
        if p.qos and self.auto_ack:
            self._send(encode_puback(p.packet_id))

    async def _keep_alive(self) -> None:
        if not self.keepalive:
            return
        while True:
            await asyncio.sleep(self.keepalive)
            self._pong.clear()
            self._send(PINGREQ)
            try:
                async with asyncio.timeout(self.timeout):
                    await self._pong.wait()
            except TimeoutError:
                self._end(MqttError(f"the MQTT broker {self.where} did not answer a ping within {self.timeout:.0f} s"))
                return

    def _send(self, data: bytes) -> None:
        if self._failed is not None:
            raise self._failed
        assert self._writer is not None, "connect() first"
        self._writer.write(data)

    async def _request(self, packet_id: int, data: bytes) -> PubAck | SubAck:
        """Send a packet and wait (at most ``timeout``) for the acknowledgement with its id."""
        future: asyncio.Future[PubAck | SubAck] = asyncio.get_running_loop().create_future()
        self._waiting[packet_id] = future
        try:
            self._send(data)
            async with asyncio.timeout(self.timeout):
                return await future
        except TimeoutError:
            raise MqttError(f"the MQTT broker {self.where} did not acknowledge within {self.timeout:.0f} s") from None
        finally:
            self._waiting.pop(packet_id, None)

    def _next_id(self) -> int:
        while (packet_id := next(self._ids)) in self._waiting:
            pass
        return packet_id

    async def publish(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False) -> None:
        """Publish; with QoS 1, return once the broker has acknowledged (PUBACK)."""
        if qos == 0:
            self._send(encode_publish(Publish(topic, payload, 0, retain)))
            await self._drain()
            return
        packet_id = self._next_id()
        await self._request(packet_id, encode_publish(Publish(topic, payload, qos, retain, packet_id=packet_id)))

    async def subscribe(self, topic_filter: str, *, qos: int = 1) -> int:
        """Subscribe and return the QoS the broker granted; :class:`MqttError` when it refuses."""
        packet_id = self._next_id()
        answer = await self._request(packet_id, encode_subscribe(packet_id, [(topic_filter, qos)]))
        assert isinstance(answer, SubAck)
        if answer.granted != (answer.granted[0],) or answer.granted[0] == SUBACK_FAILURE:
            raise MqttError(f"the MQTT broker {self.where} refused the subscription to {topic_filter!r}")
        return answer.granted[0]

    async def ack(self, message: Message) -> None:
        """Acknowledge a QoS 1 message (with ``auto_ack=False``, after it has been stored)."""
        if message.qos:
            self._send(encode_puback(message.packet_id))
            await self._drain()

    async def _drain(self) -> None:
        assert self._writer is not None
        try:
            await self._writer.drain()
        except OSError as exc:
            error = MqttError(f"the connection to the MQTT broker {self.where} broke: {exc}")
            self._end(error)
            raise (self._failed or error) from exc

    async def messages(self) -> AsyncIterator[Message]:
        """The delivered messages, in order, until the connection ends (then :class:`MqttError`)."""
        while True:
            item = await self._queue.get()
            if isinstance(item, MqttError):
                self._queue.put_nowait(item)  # every later reader sees the end too
                raise item
            yield item
