"""MQTT: hub presence and telemetry into the hub registry; signed commands to hubs.

Topics and messages are defined in :mod:`protocol.commands` (no patient data on MQTT):

* ``mchub/hubs/+/status`` (retained; the hub's last-will publishes ``{"online": false}``)
  -> ``hubs.online``, ``last_seen_ms``, ``version`` (a hub that synced within the presence
  window stays online when its MQTT session ends: :mod:`cloud.fleet.presence`);
* ``mchub/hubs/+/telemetry`` -> ``hubs.queue_depth``, ``last_seen_ms``, ``telemetry`` (JSON);
* :func:`publish_command` signs a command with the cloud key and publishes it (QoS 1).

Every worker may run the listener: the updates are idempotent. Messages from unknown hubs
are ignored; malformed ones are logged with the hub id and dropped (they carry no data
that could be lost: the next status or telemetry message replaces them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import aiomqtt
import msgspec
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.db.engine import Database
from cloud.errors import CloudError
from cloud.fleet.presence import down_from_telemetry
from cloud.server import metrics
from protocol.backoff import Backoff
from protocol.commands import CommandBody, CommandName, HubStatus, Telemetry, sign_command, topic
from protocol.ids import now_ms, uuid7

log = logging.getLogger("mchub.cloud.mqtt")


class MqttError(CloudError):
    """The broker could not be reached or refused a publish."""


async def apply_message(db: Database, topic_name: str, payload: bytes,
                        window_ms: int = 180_000) -> str | None:
    """Apply one status/telemetry message to the registry; returns the hub id updated (or None).

    A revoked hub's messages change nothing (its connection may outlive the revocation).
    """
    parts = topic_name.split("/")
    if len(parts) != 4 or parts[0] != "mchub" or parts[1] != "hubs":
        return None
    hub_id, leaf = parts[2], parts[3]
    now = now_ms()
    try:
        async with db.transaction() as tx:
            if leaf == "status":
                st = msgspec.json.decode(payload, type=HubStatus)
                # the last will ("online": false) leaves a hub online that synced within the window
                n = await tx.execute("UPDATE hubs SET online = ($1 OR EXISTS (SELECT 1 FROM sync_state s "
                                     "WHERE s.hub_id = hubs.hub_id AND s.last_batch_ms >= $2)), "
                                     "last_seen_ms = CASE WHEN $3 THEN $4 ELSE last_seen_ms END, "
                                     "version = CASE WHEN $5 = '' THEN version ELSE $6 END "
                                     "WHERE hub_id = $7 AND status = 'active'",
                                     st.online, now - window_ms, st.online, now, st.version, st.version, hub_id)
            elif leaf == "telemetry":
                tm = msgspec.json.decode(payload, type=Telemetry)
                n = await tx.execute("UPDATE hubs SET online = $1, last_seen_ms = $2, queue_depth = $3, "
                                     "telemetry = $4, config_applied = COALESCE($5, config_applied), "
                                     "devices_down = $6 WHERE hub_id = $7 AND status = 'active'",
                                     True, now, tm.queue_depth, payload.decode(), tm.config_applied,
                                     down_from_telemetry(tm.devices), hub_id)
            else:
                return None
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
        log.warning("hub %s sent a malformed %s message: %s", hub_id, leaf, exc)
        return None
    metrics.MQTT_MESSAGES.labels(leaf).inc()
    return hub_id if n else None


async def run_listener(db: Database, host: str, port: int, stop: asyncio.Event,
                       window_ms: int = 180_000) -> None:
    """Subscribe to hub status and telemetry until ``stop``; reconnects with backoff."""
    backoff = Backoff(1.0, 60.0)
    while not stop.is_set():
        try:
            async with aiomqtt.Client(host, port, identifier=f"mchub-cloud-{os.getpid()}") as client:
                await client.subscribe("mchub/hubs/+/status", qos=1)
                await client.subscribe("mchub/hubs/+/telemetry", qos=0)
                log.info("listening for hub status on mqtt://%s:%d", host, port)
                backoff.reset()
                async for message in client.messages:
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    try:
                        await apply_message(db, message.topic.value, payload, window_ms)
                    except CloudError as exc:
                        log.warning("could not record hub status from %s: %s", message.topic.value, exc)
        except aiomqtt.MqttError as exc:
            wait = backoff.next()
            log.warning("MQTT broker %s:%d unavailable (%s); retrying in %.0f s", host, port, exc, wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)


async def publish_command(host: str, port: int, key: ed25519.Ed25519PrivateKey, hub_id: str,
                          name: CommandName, args: dict[str, str] | None = None,
                          ttl_s: int = 3600) -> CommandBody:
    """Sign and publish a command to one hub (QoS 1); returns what was sent."""
    issued = now_ms()
    body = CommandBody(id=uuid7(issued), hub_id=hub_id, name=name, issued_ms=issued,
                       expires_ms=issued + ttl_s * 1000, args=args or {})
    try:
        async with aiomqtt.Client(host, port, identifier=f"mchub-cloud-cmd-{os.getpid()}") as client:
            await client.publish(topic(hub_id, "commands"), sign_command(body, key), qos=1)
    except aiomqtt.MqttError as exc:
        raise MqttError(f"could not publish the command to {host}:{port}: {exc}") from exc
    return body
