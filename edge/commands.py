"""Command channel and heartbeat over MQTT (:mod:`drivers.mqtt.client`), per protocol/commands.py.

* retained ``status`` = ``{"online": true, ...}`` on connect; the broker publishes the
  last-will ``{"online": false}`` (retained) when the hub vanishes;
* ``telemetry`` every ``telemetry_interval_s`` (queue depth, oldest unsynced age, device
  health, free disk, version) — counts only, never patient data;
* ``commands``: signed by the cloud, verified (signature, hub id, expiry), executed at
  most once per id (ids kept in hub.db), answered on ``replies``. Known: ``sync-now``,
  ``reload-config``, ``rotate-key`` (reply carries the new public key), ``ping``.

Broker loss is not an error for the hub: it reconnects with backoff and syncing goes on
over HTTPS regardless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from drivers.mqtt.client import MqttClient, MqttError, Will
from edge.config import MqttConfig
from edge.store import reader as q
from protocol.backoff import Backoff
from protocol.commands import CommandBody, CommandError, CommandReply, HubStatus, Telemetry, topic, verify_command
from protocol.ids import now_ms

log = logging.getLogger("edge.commands")
Handler = Callable[[CommandBody], Awaitable[str]]


class CommandChannel:
    """One MQTT connection: status, telemetry, commands."""

    def __init__(self, cfg: MqttConfig, hub_id: str, version: str, cloud_key: Any,
                 telemetry: Callable[[], Awaitable[Telemetry]], handlers: dict[str, Handler],
                 call: Callable[[Callable[[sqlite3.Connection], Any]], Awaitable[Any]]) -> None:
        self.cfg = cfg
        self.hub_id = hub_id
        self.version = version
        self.cloud_key = cloud_key
        self.telemetry = telemetry
        self.handlers = handlers
        self.call = call
        self.connected = False
        self.since_ms = now_ms()

    async def run(self) -> None:
        """Stay connected until cancelled."""
        backoff = Backoff(1.0, 60.0)
        will = Will(topic(self.hub_id, "status"), msgspec.json.encode(HubStatus(online=False)), qos=1, retain=True)
        while True:
            try:
                async with MqttClient(self.cfg.host, self.cfg.port, client_id=f"mchub-hub-{self.hub_id}",
                                      username=self.cfg.username, password=self.cfg.password,
                                      will=will, keepalive=30) as client:
                    self.connected = True
                    backoff.reset()
                    await self._session(client)
            except Exception as exc:  # never a reason to stop the hub
                self.connected = False
                wait = backoff.next()
                if isinstance(exc, MqttError):
                    log.warning("MQTT broker %s:%d unavailable (%s); retrying in %.0f s", self.cfg.host,
                                self.cfg.port, exc, wait)
                else:  # a fault of the hub's own, not the broker's: log where it came from
                    log.exception("MQTT session with %s:%d failed; retrying in %.0f s", self.cfg.host,
                                  self.cfg.port, wait)
                await asyncio.sleep(wait)

    async def _session(self, client: MqttClient) -> None:
        await client.subscribe(topic(self.hub_id, "commands"), qos=1)  # first: "online" means commands are heard
        status = HubStatus(online=True, version=self.version, since_ms=self.since_ms)
        await client.publish(topic(self.hub_id, "status"), msgspec.json.encode(status), qos=1, retain=True)
        beat = asyncio.create_task(self._heartbeat(client))
        try:
            async for message in client.messages():
                reply = await self.handle(message.payload)
                if reply is not None:
                    await client.publish(topic(self.hub_id, "replies"), msgspec.json.encode(reply), qos=1)
        except asyncio.CancelledError:  # a clean stop: say so (the will covers only a lost connection)
            with contextlib.suppress(MqttError, TimeoutError):
                async with asyncio.timeout(2):
                    await client.publish(topic(self.hub_id, "status"),
                                         msgspec.json.encode(HubStatus(online=False)), qos=1, retain=True)
            raise
        finally:
            beat.cancel()

    async def _heartbeat(self, client: MqttClient) -> None:
        while True:
            try:
                t = await self.telemetry()
                await client.publish(topic(self.hub_id, "telemetry"), msgspec.json.encode(t), qos=0)
            except MqttError:
                return
            except Exception:
                log.exception("telemetry failed")
            await asyncio.sleep(self.cfg.telemetry_interval_s)

    async def handle(self, payload: bytes) -> CommandReply | None:
        """Verify and execute one command; returns the reply (None when it cannot be attributed)."""
        try:
            cmd = verify_command(payload, self.cloud_key, self.hub_id, now_ms())
        except CommandError as exc:
            log.warning("refused a command: %s", exc)
            return None
        claimed = await self.call(q.claim_command(cmd.id, cmd.name, str(dict(cmd.args)), now_ms()))
        if not claimed:
            log.info("command %s (%s) was executed before; not again", cmd.id, cmd.name)
            return CommandReply(id=cmd.id, ok=True, duplicate=True, detail="already executed")
        handler = self.handlers.get(cmd.name)
        if handler is None:
            ok, detail = False, f"this hub does not support {cmd.name!r}"
        else:
            try:
                ok, detail = True, await handler(cmd)
            except Exception as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
        log.info("command %s %s: %s", cmd.name, "done" if ok else "failed", detail)
        await self.call(q.finish_command(cmd.id, ok, detail))
        return CommandReply(id=cmd.id, ok=ok, detail=detail)
