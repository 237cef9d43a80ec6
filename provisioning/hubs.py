"""Hubs after enrollment: who may sign batches, MQTT logins, listing and revocation.

Seams for the cloud:

* batch ingest — :func:`resolve_signer` turns ``(hub id, signer key id)`` from a batch
  header into the Ed25519 key to verify with, or raises ``UnknownHub`` / ``HubRevoked``
  (answer 403) / ``UnknownKey`` (401), matching docs/protocol.md §3 step 2. During a
  rotation overlap both the old and the new key resolve.
* MQTT — :func:`mqtt_login_allowed` for a broker auth hook, or write the broker's
  password file from :func:`mqtt_password_entries` (a revoked hub has no entry).
* ``hub revoke`` — :func:`revoke_hub`: marks the hub revoked (every later request is
  refused by the two checks above), retires every key, drops its MQTT password, keeps every reading already
  received, and audits who did it and why. :func:`revoked_serials` feeds
  ``FleetCA.issue_crl`` for TLS client-certificate checks.
"""

from __future__ import annotations

import msgspec
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.keys import load_ed25519_public
from provisioning import mqtt
from provisioning.errors import HubRevoked, NotFound, UnknownHub, UnknownKey
from provisioning.stores import AuditEntry, HubKey, HubRecord, Stores


def current_keys(hub: HubRecord, now_ms: int) -> list[HubKey]:
    """Keys that verify now: not retired, certificate not expired."""
    return [k for k in hub.keys if (k.retire_ms is None or now_ms < k.retire_ms) and now_ms <= k.not_after_ms]


def signer_key(hub: HubRecord | None, key_id: bytes, now_ms: int) -> ed25519.Ed25519PublicKey:
    """The key that must have signed a request from ``hub`` naming ``key_id``."""
    if hub is None:
        raise UnknownHub("this hub is not enrolled with the cloud")
    if hub.status == "revoked":
        raise HubRevoked(f"网关已被吊销 / hub {hub.hub_id} has been revoked (taken out of service): it must stop "
                         "sending; its stored readings are kept; ask the central admin")
    for k in current_keys(hub, now_ms):
        if k.key_id == key_id.hex():
            return load_ed25519_public(k.public_raw)
    raise UnknownKey(f"key {key_id.hex()} is not a current key of hub {hub.hub_id} (retired, expired or never issued)")


async def resolve_signer(stores: Stores, hub_id: str, key_id: bytes, *, now_ms: int) -> ed25519.Ed25519PublicKey:
    """Batch ingest: the hub's public key for the signer key id in a batch header."""
    return signer_key(await stores.hubs.get(hub_id), key_id, now_ms)


def mqtt_login_allowed(hub: HubRecord | None, password: str) -> bool:
    """Broker auth hook: an active hub with the right password."""
    if hub is None or hub.status != "active" or hub.mqtt_password_hash is None:
        return False
    return mqtt.verify_password(password, hub.mqtt_password_hash)


def mqtt_password_entries(hubs: list[HubRecord]) -> list[tuple[str, str]]:
    """``(username, hash)`` for every hub that may use MQTT (feed to ``mqtt.password_file``)."""
    return [(h.hub_id, h.mqtt_password_hash) for h in hubs if h.status == "active" and h.mqtt_password_hash]


def revoked_serials(hubs: list[HubRecord]) -> set[str]:
    """Certificate serials (hex) of every revoked hub, for verify_hub_certificate and CRLs."""
    return {k.cert_serial for h in hubs if h.status == "revoked" for k in h.keys}


async def revoke_hub(stores: Stores, hub_id: str, *, actor: str, reason: str, now_ms: int) -> HubRecord:
    """Take a hub out of service now. Idempotent: revoking a revoked hub changes nothing."""
    hub = await stores.hubs.get(hub_id)
    if hub is None:
        raise NotFound(f"no hub {hub_id!r}; `mchub provision hub list` shows the enrolled hubs")
    if hub.status == "revoked":
        return hub
    keys = tuple(k if k.retire_ms is not None and k.retire_ms <= now_ms
                 else msgspec.structs.replace(k, retire_ms=now_ms) for k in hub.keys)  # every key retires now
    hub = msgspec.structs.replace(
        hub, status="revoked", revoked_ms=now_ms, revoked_by=actor, revoked_reason=reason, mqtt_password_hash=None,
        keys=keys,
    )
    await stores.hubs.save(hub)
    await stores.audit.append(AuditEntry(
        at_ms=now_ms, actor=actor, action="hub.revoke", target=hub_id,
        detail={"reason": reason, "serials": ",".join(k.cert_serial for k in hub.keys)},
    ))
    return hub


async def touch(stores: Stores, hub: HubRecord, *, now_ms: int, min_interval_ms: int = 60_000) -> HubRecord:
    """Record that the hub was seen (at most one write per ``min_interval_ms``)."""
    if hub.last_seen_ms is not None and now_ms - hub.last_seen_ms < min_interval_ms:
        return hub
    hub = msgspec.structs.replace(hub, last_seen_ms=now_ms)
    await stores.hubs.save(hub)
    return hub


class HubRow(msgspec.Struct, frozen=True, kw_only=True):
    """One line of ``hub list`` / ``GET /api/v1/admin/hubs``."""

    hub_id: str
    site_id: str
    serial: str
    status: str
    cert_expires_ms: int | None
    last_seen_ms: int | None
    keys: int  #: keys that verify now (2 during a rotation overlap)


def hub_row(hub: HubRecord, now_ms: int) -> HubRow:
    """Summarise a hub for listings (newest certificate's expiry)."""
    return HubRow(
        hub_id=hub.hub_id, site_id=hub.site_id, serial=hub.serial, status=hub.status,
        cert_expires_ms=max((k.not_after_ms for k in hub.keys), default=None),
        last_seen_ms=hub.last_seen_ms, keys=len(current_keys(hub, now_ms)) if hub.status == "active" else 0,
    )
