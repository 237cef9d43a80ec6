"""The hub registry: sites, hubs and their Ed25519 keys, revocation, presence.

This is the Python API that provisioning (enrollment endpoints) and the CLI call; it needs
tortoise initialised (:func:`cloud.db.orm.orm`). A hub may hold several keys with
overlapping validity windows, so a key rotation never rejects a batch in flight::

    await create_site("S001", "城关镇卫生院")
    await register_hub("H001", site_id="S001", public_key=raw32)
    await add_key("H001", new_raw32, valid_from_ms=now)          # rotation: both valid
    await expire_key("H001", old_key_id, at_ms=now + 86_400_000)  # old one ends tomorrow
    await revoke_hub("H001", reason="stolen", actor="admin:li")

Ingest looks keys up with :func:`lookup_signer` on its own connection (hot path, no ORM).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import msgspec
from cryptography.hazmat.primitives.asymmetric import ed25519
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from cloud.db.engine import Database, Tx
from cloud.db.models import AuditEntry, Hub, HubKey, Site, SyncState
from cloud.errors import RegistryError
from protocol.ids import now_ms
from protocol.keys import key_id

_HUB_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")  #: docs/protocol.md §1


@dataclass(frozen=True)
class HubInfo:
    """One row of :func:`list_hubs`."""

    hub_id: str
    site_id: str
    status: str
    online: bool
    last_seen_ms: int | None
    queue_depth: int | None
    key_ids: list[str]  #: hex ids of keys currently valid
    acked_through: dict[int, int]  #: signed epoch -> high-water mark


def _check_key(public_key: bytes) -> str:
    if len(public_key) != 32:
        raise RegistryError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise RegistryError(f"not an Ed25519 public key: {exc}") from exc
    return key_id(public_key).hex()


async def _audit(action: str, actor: str, hub_id: str | None, detail: dict[str, object] | None = None,
                 reason: str | None = None) -> None:
    await AuditEntry.create(at_ms=now_ms(), actor=actor, action=action, outcome="ok", hub_id=hub_id,
                            reason=reason, detail=msgspec.json.encode(detail or {}).decode())


async def create_site(site_id: str, name: str = "", actor: str = "cli") -> None:
    """Create a site (idempotent: an existing site keeps its name)."""
    if not _HUB_ID.fullmatch(site_id.encode()):
        raise RegistryError(f"site id {site_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    _, created = await Site.get_or_create(site_id=site_id, defaults={"name": name, "created_ms": now_ms()})
    if created:
        await _audit("site.create", actor, None, {"site_id": site_id})


async def register_hub(hub_id: str, *, site_id: str, public_key: bytes, name: str = "",
                       valid_from_ms: int | None = None, valid_to_ms: int | None = None,
                       actor: str = "cli") -> str:
    """Register a hub with its first Ed25519 key; returns the key id (hex)."""
    if not _HUB_ID.fullmatch(hub_id.encode()):
        raise RegistryError(f"hub id {hub_id!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")
    kid = _check_key(public_key)
    if not await Site.exists(site_id=site_id):
        raise RegistryError(f"site {site_id!r} does not exist; create it first (mchub cloud site add)")
    try:
        async with in_transaction():
            if await Hub.exists(hub_id=hub_id):
                raise RegistryError(f"hub {hub_id!r} is already registered; use add_key to rotate its key")
            await Hub.create(hub_id=hub_id, site_id=site_id, name=name, created_ms=now_ms())
            await HubKey.create(hub_id=hub_id, key_id=kid, public_key=public_key,
                                valid_from_ms=valid_from_ms or 0, valid_to_ms=valid_to_ms, created_ms=now_ms())
            await _audit("hub.register", actor, hub_id, {"site_id": site_id, "key_id": kid})
    except IntegrityError as exc:  # registered concurrently by another caller
        raise RegistryError(f"hub {hub_id!r} is already registered; use add_key to rotate its key") from exc
    return kid


async def add_key(hub_id: str, public_key: bytes, *, valid_from_ms: int | None = None,
                  valid_to_ms: int | None = None, actor: str = "cli") -> str:
    """Add another key to a hub (rotation); returns its id."""
    kid = _check_key(public_key)
    if not await Hub.exists(hub_id=hub_id):
        raise RegistryError(f"hub {hub_id!r} is not registered")
    try:
        await HubKey.create(hub_id=hub_id, key_id=kid, public_key=public_key,
                            valid_from_ms=valid_from_ms or 0, valid_to_ms=valid_to_ms, created_ms=now_ms())
    except IntegrityError as exc:
        raise RegistryError(f"hub {hub_id!r} already has key {kid}") from exc
    await _audit("hub.key.add", actor, hub_id, {"key_id": kid})
    return kid


async def expire_key(hub_id: str, kid: str, *, at_ms: int | None = None, actor: str = "cli") -> None:
    """End a key's validity at ``at_ms`` (default now), e.g. after a rotation overlap."""
    n = await HubKey.filter(hub_id=hub_id, key_id=kid).update(valid_to_ms=at_ms or now_ms())
    if not n:
        raise RegistryError(f"hub {hub_id!r} has no key {kid}")
    await _audit("hub.key.expire", actor, hub_id, {"key_id": kid})


async def revoke_hub(hub_id: str, *, reason: str, actor: str = "cli") -> None:
    """Revoke a hub: every later batch is refused with 403 ``revoked`` (its data stays)."""
    now = now_ms()
    async with in_transaction():
        n = await Hub.filter(hub_id=hub_id).update(status="revoked", revoked_ms=now, revoked_reason=reason)
        if not n:
            raise RegistryError(f"hub {hub_id!r} is not registered")
        await HubKey.filter(hub_id=hub_id, revoked_ms=None).update(revoked_ms=now)
        await _audit("hub.revoke", actor, hub_id, reason=reason)


async def list_hubs(site_id: str | None = None) -> list[HubInfo]:
    """All hubs (of one site), with currently valid key ids and marks (three queries in all)."""
    now = now_ms()
    query = Hub.all().order_by("hub_id")
    if site_id is not None:
        query = query.filter(site_id=site_id)
    hubs = await query
    ids = [h.hub_id for h in hubs]
    keys: dict[str, list[str]] = {}
    for k in await HubKey.filter(hub_id__in=ids, revoked_ms=None).order_by("id"):
        if k.valid_from_ms <= now and (k.valid_to_ms is None or k.valid_to_ms > now):
            keys.setdefault(k.hub_id, []).append(k.key_id)
    marks: dict[str, dict[int, int]] = {}
    for s in await SyncState.filter(hub_id__in=ids).values("hub_id", "epoch", "acked_through"):
        marks.setdefault(s["hub_id"], {})[s["epoch"]] = s["acked_through"]
    return [HubInfo(h.hub_id, h.site_id, h.status, h.online, h.last_seen_ms, h.queue_depth,
                    keys.get(h.hub_id, []), marks.get(h.hub_id, {})) for h in hubs]


@dataclass(frozen=True)
class Signer:
    """What ingest learns about a batch's hub and signer key."""

    hub_status: str | None  #: None: hub unknown
    public_key: ed25519.Ed25519PublicKey | None  #: None: no valid key with that id


async def lookup_signer(db: Database | Tx, hub_id: str, signer_key_id: bytes, at_ms: int) -> Signer:
    """Find the hub and its key named by a batch header (valid at ``at_ms``, not revoked, certificate current)."""
    row = await db.fetchrow(
        "SELECT h.status, k.public_key, k.valid_from_ms, k.valid_to_ms, k.revoked_ms, k.not_after_ms FROM hubs h "
        "LEFT JOIN hub_keys k ON k.hub_id = h.hub_id AND k.key_id = $1 WHERE h.hub_id = $2",
        signer_key_id.hex(), hub_id)
    if row is None:
        return Signer(None, None)
    valid = (row["public_key"] is not None and row["revoked_ms"] is None and row["valid_from_ms"] <= at_ms
             and (row["valid_to_ms"] is None or row["valid_to_ms"] > at_ms)
             and (row["not_after_ms"] is None or row["not_after_ms"] >= at_ms))  # certificate (provisioning)
    key = ed25519.Ed25519PublicKey.from_public_bytes(bytes(row["public_key"])) if valid else None
    return Signer(row["status"], key)
