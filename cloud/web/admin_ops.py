"""What the admin console reads and changes, in one place (each change validated and audited).

Reads are parameterised SQL over the registry tables (one query per listing). Changes go
through the services that own them: :class:`cloud.fleet.service.Fleet` (sites, enrollment
tokens, revocation, key rotation, the device inventory) and :mod:`cloud.users` (accounts,
roles, second factor), which validate and audit them.
"""

from __future__ import annotations

from typing import Any

from cloud.db.engine import Tx
from cloud.fleet.service import Fleet


async def sites(tx: Tx) -> list[dict[str, Any]]:
    """Sites with how many hubs each has."""
    rows = await tx.fetch("SELECT s.site_id, s.name, s.created_ms, COUNT(h.hub_id) AS hubs FROM sites s "
                          "LEFT JOIN hubs h ON h.site_id = s.site_id GROUP BY s.site_id, s.name, s.created_ms "
                          "ORDER BY s.site_id")
    return [dict(r) for r in rows]


async def hubs(tx: Tx, now: int) -> list[dict[str, Any]]:
    """Hubs with presence, valid keys and the earliest certificate expiry among them (migration 3), and the
    configuration push: desired (the cloud's version) vs applied (the hub's report), devices down (migration 15)."""
    rows = await tx.fetch(
        "SELECT h.hub_id, h.site_id, h.status, h.online, h.last_seen_ms, h.version, h.revoked_reason, "
        "h.config_applied, h.devices_down, v.version AS config_desired, "
        "COUNT(k.key_id) AS valid_keys, MIN(k.not_after_ms) AS cert_expiry_ms FROM hubs h LEFT JOIN hub_keys k "
        "ON k.hub_id = h.hub_id AND k.revoked_ms IS NULL AND (k.valid_to_ms IS NULL OR k.valid_to_ms > $1) "
        "LEFT JOIN hub_config_versions v ON v.hub_id = h.hub_id "
        "GROUP BY h.hub_id, h.site_id, h.status, h.online, h.last_seen_ms, h.version, h.revoked_reason, "
        "h.config_applied, h.devices_down, v.version "
        "ORDER BY h.site_id, h.hub_id", now)
    return [{**dict(r), "online": bool(r["online"]), "config_desired": r["config_desired"] or 0,
             "config_pending": (r["config_desired"] or 0) > (r["config_applied"] or 0) if r["config_applied"]
             is not None else bool(r["config_desired"]),
             "devices_down": [d for d in (r["devices_down"] or "").split(",") if d]} for r in rows]


async def tokens(tx: Tx) -> list[dict[str, Any]]:
    """Enrollment tokens (never their secret), newest first."""
    rows = await tx.fetch("SELECT token_id, site_id, hub_serial, created_ms, expires_ms, created_by, used_ms, "
                          "used_by_hub FROM enroll_tokens ORDER BY created_ms DESC LIMIT 100")
    return [dict(r) for r in rows]


async def devices(tx: Tx) -> list[dict[str, Any]]:
    """Devices per hub and station: the configured inventory, else the devices seen in readings."""
    rows = await tx.fetch("SELECT hub_id, station, device_id, kind, transport, address, label "
                          "FROM device_inventory ORDER BY hub_id, station, device_id")
    if rows:
        return [{**dict(r), "seen": False} for r in rows]
    rows = await tx.fetch("SELECT hub_id, station_id AS station, device_id, first_seen_ms FROM devices "
                          "ORDER BY hub_id, station_id, device_id")
    return [{**dict(r), "seen": True} for r in rows]


async def audit_log(tx: Tx, *, actor: str = "", action: str = "", hub_id: str = "", before_id: int | None = None,
                    limit: int = 100) -> list[dict[str, Any]]:
    """Audit entries, newest first, filtered by actor / action prefix / hub (all optional)."""
    rows = await tx.fetch(
        "SELECT id, at_ms, actor, action, outcome, hub_id, subject_id, reason, detail FROM audit_log "
        "WHERE ($1 = '' OR actor = $2) AND ($3 = '' OR action LIKE $4) AND ($5 = '' OR hub_id = $6) "
        "AND id < $7 ORDER BY id DESC LIMIT $8",
        actor, actor, action, action.replace("%", "") + "%", hub_id, hub_id,
        before_id if before_id is not None else 1 << 62, limit)
    return [dict(r) for r in rows]


async def add_site(fleet: Fleet, site_id: str, name: str, *, actor: str) -> None:
    """Register a site (validated and audited by the fleet service)."""
    await fleet.add_site(actor, site_id, name)


async def revoke_hub(fleet: Fleet, hub_id: str, reason: str, *, actor: str) -> None:
    """Revoke a hub: its batches, config fetches and rotations are refused from now on (audited)."""
    await fleet.revoke(actor, hub_id, reason.strip())


async def create_token(fleet: Fleet, site_id: str, *, actor: str) -> str:
    """Mint a one-time enrollment token for a site; returns its text (shown once, never stored)."""
    return (await fleet.create_token(actor, site_id)).text


async def rotate_hub(fleet: Fleet, hub_id: str, *, actor: str) -> bool:
    """Ask a hub to rotate its key now; False when no broker carried the command (it rotates on schedule)."""
    return await fleet.request_rotation(actor, hub_id)


async def add_device(fleet: Fleet, hub_id: str, *, station: int, kind: str, address: str, label: str,
                     actor: str) -> str:
    """Register a device on a hub's station; returns its id (the hub gets its new configuration)."""
    device, _, _ = await fleet.add_device(actor, hub_id, station=station, kind=kind, address=address, label=label)
    return device.device_id


async def remove_device(fleet: Fleet, hub_id: str, device_id: str, *, actor: str) -> None:
    """Unregister a device."""
    await fleet.remove_device(actor, hub_id, device_id)
