"""The MQTT device driver: subscribe (QoS 1) on a local broker, decode, emit each message once.

Delivery is at-least-once end to end: the session is persistent (``clean_session=False``,
a fixed client id), so the broker keeps QoS 1 messages while the hub is away, and a
message is acknowledged (PUBACK) only after the hub has stored its measurement durably.
A redelivered message is recognised by ``(device_id, seq, time)`` in a window of recent
keys and not emitted twice. A bad message is reported to the sink and acknowledged, so it
is reported once and does not block the messages after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from drivers.base import Sink
from drivers.errors import FrameError, TransportError
from drivers.mqtt.client import MqttClient, MqttError
from drivers.mqtt.codec import DeviceMessage, SchemaError, decode_message
from drivers.mqtt.topic import check_filter, match
from drivers.options import device_options, option_error
from protocol.backoff import Backoff

log = logging.getLogger(__name__)

#: default topic; ``{device_id}`` is replaced by the device's own id
DEFAULT_TOPIC = "clinic/{device_id}/measurement"


class MqttDriver:
    """One MQTT device (``device``, its own id, by default the hub's device id) on ``topic``.

    ``{device_id}`` in ``topic`` is replaced by ``device``; the filter may also hold
    wildcards, e.g. ``clinic/+/measurement`` (see :meth:`_decode` for whose messages count).
    """

    def __init__(self, device_id: str, *, host: str = "127.0.0.1", port: int = 1883,
                 topic: str = DEFAULT_TOPIC, device: str | None = None, client_id: str | None = None,
                 keepalive: int = 30, backoff: Backoff | None = None, max_failures: int | None = None,
                 window: int = 128) -> None:
        self.device_id = device_id
        self.device = device or device_id
        self.topic = topic.replace("{device_id}", self.device)
        check_filter(self.topic)
        self.host = host
        self.port = port
        self.client_id = client_id or f"mchub-{device_id}"
        self.keepalive = keepalive
        self.backoff = backoff or Backoff()
        self.max_failures = max_failures
        self.window = window
        self._seen: OrderedDict[tuple[str, int, str], None] = OrderedDict()

    async def run(self, sink: Sink) -> None:
        """Connect, subscribe, handle messages; reconnect with backoff when the broker link drops."""
        failures = 0
        while True:
            client = MqttClient(self.host, self.port, client_id=self.client_id, clean_session=False,
                                keepalive=self.keepalive, timeout=10, auto_ack=False)  # PUBACK after storing
            try:
                async with client:
                    await client.subscribe(self.topic, qos=1)
                    where = f"mqtt {self.host}:{self.port} {self.topic}"
                    log.info("%s: subscribed (%s)", self.device_id, where)
                    sink.state(True, where)
                    self.backoff.reset()
                    failures = 0
                    async for message in client.messages():
                        await self._handle(sink, message.topic, message.payload)
                        await client.ack(message)
            except MqttError as exc:
                failures += 1
                error = TransportError(f"mqtt {self.host}:{self.port}: {exc}")
                log.warning("%s: broker link lost: %s", self.device_id, exc)
                sink.state(False, str(error))
                if self.max_failures is not None and failures >= self.max_failures:
                    raise error from exc
            await asyncio.sleep(self.backoff.next())

    async def _handle(self, sink: Sink, topic: str, payload: bytes) -> None:
        try:
            msg = self._decode(topic, payload)
        except FrameError as exc:
            log.warning("%s: message on %s rejected: %s", self.device_id, topic, exc)
            sink.frame_error(exc)
            return
        if msg is None:
            log.debug("%s: message on %s is for another device", self.device_id, topic)
            return
        if msg.key in self._seen:
            log.info("%s: message seq %d redelivered; already stored", self.device_id, msg.seq)
            return
        await sink.event(msg.measurement)
        self._seen[msg.key] = None
        while len(self._seen) > self.window:
            self._seen.popitem(last=False)

    def _decode(self, topic: str, payload: bytes) -> DeviceMessage | None:
        """The message, or None when a wildcard subscription delivered another device's message.

        With a ``+`` in the filter, its first level names the device (``clinic/+/measurement``);
        with only ``#``, the payload's ``device_id`` does. A message on this device's own
        topic that names another device is a schema error.
        """
        captured = match(self.topic, topic)
        if captured is None:
            raise SchemaError(f"topic {topic!r} does not match the subscription {self.topic!r}", payload)
        levels = self.topic.split("/")
        if "+" in levels and captured[0] != self.device:
            return None
        msg = decode_message(payload)
        if msg.device_id != self.device:
            if "+" not in levels and "#" in levels:
                return None
            raise SchemaError(f"message on {topic!r} says device_id {msg.device_id!r}, expected {self.device!r}",
                              payload)
        return msg


_TEXT = Meta(min_length=1)


class MqttOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The keys of an MQTT device's table, each declared once."""

    host: Annotated[str, _TEXT, Meta(examples=["127.0.0.1"])] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535, examples=[1883])] = 1883
    #: a topic filter; ``{device_id}`` is replaced by ``device``
    topic: Annotated[str, _TEXT, Meta(examples=[DEFAULT_TOPIC])] = DEFAULT_TOPIC
    #: the id the device uses in its messages (default: the hub's device id)
    device: Annotated[str, _TEXT, Meta(examples=["bp-3"])] | None = None
    client_id: Annotated[str, _TEXT, Meta(examples=["mchub-bp-3"])] | None = None
    keepalive: Annotated[int, Meta(ge=5, le=3600, examples=[30])] = 30
    reconnect_max: Annotated[float, Meta(gt=0, examples=[30], description=(
        "write a positive number of seconds, e.g. reconnect_max = 30"))] = 30.0


def mqtt_device(device_id: str, config: Mapping[str, Any]) -> MqttDriver:
    """``driver = "mqtt"``: the keys of :class:`MqttOptions`."""
    o = device_options(device_id, config, MqttOptions)
    try:
        return MqttDriver(device_id, host=o.host, port=o.port, topic=o.topic, device=o.device, client_id=o.client_id,
                          keepalive=o.keepalive, backoff=Backoff(maximum=o.reconnect_max))
    except ValueError as exc:
        raise option_error(device_id, "topic", str(exc),
                           'use a topic filter like "clinic/{device_id}/measurement"') from None
