"""Cloud -> hub commands and hub status messages carried over MQTT (no patient data).

Topics (``{hub}`` is the hub id):

* ``mchub/hubs/{hub}/status``    retained JSON :class:`HubStatus`; the hub's MQTT last-will
  publishes ``{"online": false}`` here so the dashboard sees it go offline.
* ``mchub/hubs/{hub}/telemetry`` JSON :class:`Telemetry`, every 30 s.
* ``mchub/hubs/{hub}/commands``  a signed command (:func:`sign_command`), QoS 1.
* ``mchub/hubs/{hub}/replies``   JSON :class:`CommandReply`.

A command is JSON ``{"body": <base64 of JSON CommandBody>, "sig": <base64 Ed25519>}``
signed by the cloud's signing key. The hub verifies the signature, that the command names
this hub, that it has not expired, and that its id was not executed before (idempotence).
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.errors import ProtocolError

CommandName = Literal["sync-now", "reload-config", "rotate-key", "ping", "apply-config", "revoke",
                      "resend-dead-letter", "dismiss-dead-letter"]
PREFIX = "mchub/hubs"


def topic(hub_id: str, leaf: Literal["status", "telemetry", "commands", "replies"]) -> str:
    """MQTT topic of one hub's channel."""
    return f"{PREFIX}/{hub_id}/{leaf}"


class CommandError(ProtocolError):
    """A command is malformed, unsigned, for another hub, or expired."""


class CommandBody(msgspec.Struct, frozen=True, kw_only=True):
    """What the cloud asks a hub to do."""

    id: str  #: unique (UUIDv7); the hub executes each id at most once
    hub_id: str
    name: CommandName
    issued_ms: int
    expires_ms: int
    args: dict[str, str] = {}


class _Signed(msgspec.Struct, frozen=True):
    body: str
    sig: str


class CommandReply(msgspec.Struct, frozen=True, kw_only=True):
    """The hub's answer to a command."""

    id: str
    ok: bool
    detail: str = ""
    duplicate: bool = False  #: the id was executed before; nothing was done again


class HubStatus(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Retained presence message."""

    online: bool
    version: str = ""
    since_ms: int = 0


class Telemetry(msgspec.Struct, frozen=True, kw_only=True):
    """Periodic health of a hub (counts and ages only)."""

    at_ms: int
    queue_depth: int  #: records not yet acknowledged by the cloud
    oldest_unsynced_age_s: float | None
    last_sync_ms: int | None
    devices: dict[str, str]  #: device id -> "connected" | "disconnected" | "error: ..."
    disk_free_bytes: int
    version: str
    dead_letters_open: int = 0  #: records the cloud refused that still wait for staff on the hub
    #: configuration push state of an enrolled hub (None: devices come from hub.toml only)
    config_applied: int | None = None
    config_desired: int | None = None
    config_error: str | None = None


def sign_command(body: CommandBody, key: ed25519.Ed25519PrivateKey) -> bytes:
    """Encode and sign a command for publishing."""
    raw = msgspec.json.encode(body)
    return msgspec.json.encode(_Signed(base64.b64encode(raw).decode(), base64.b64encode(key.sign(raw)).decode()))


def verify_command(data: bytes, key: ed25519.Ed25519PublicKey, hub_id: str, now_ms: int) -> CommandBody:
    """Verify a received command; raises CommandError saying why it is refused."""
    try:
        signed = msgspec.json.decode(data, type=_Signed)
        raw = base64.b64decode(signed.body, validate=True)
        sig = base64.b64decode(signed.sig, validate=True)
    except (msgspec.DecodeError, binascii.Error, UnicodeDecodeError) as exc:
        raise CommandError(f"command is not a signed JSON document: {exc}") from exc
    try:
        key.verify(sig, raw)
    except InvalidSignature:
        raise CommandError("command signature does not verify with the cloud key") from None
    try:
        body = msgspec.json.decode(raw, type=CommandBody)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CommandError(f"command body is invalid: {exc}") from exc
    if body.hub_id != hub_id:
        raise CommandError(f"command is addressed to hub {body.hub_id!r}, not this hub")
    if now_ms > body.expires_ms:
        raise CommandError("command has expired")
    return body
