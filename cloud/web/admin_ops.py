"""What the admin console reads and changes, in one place (each change validated and audited).

Reads are parameterised SQL over the registry tables (one query per listing). Changes go
through the services that own them: :class:`cloud.fleet.service.Fleet` (sites, enrollment
tokens, revocation, key rotation, the device inventory) and :mod:`cloud.users` (accounts,
roles, second factor), which validate and audit them.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from cloud import audit
from cloud.db.engine import Database, Tx
from cloud.errors import CloudError
from cloud.fleet.service import Fleet
from provisioning.errors import ReasonRequired
from provisioning.inventory import MAX_STATIONS

MAX_STATION_NAME = 40


class DeviceRefused(CloudError):
    """A device-page change was refused (station name, hub); ``reason`` picks the catalog text."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


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


#: a device's state on the devices page: in the cloud inventory and heard from; in the inventory but the hub
#: reports it down or never reported it; reported by the hub (readings, telemetry) but not in the inventory
DeviceState = Literal["reporting", "not_connected", "not_configured"]


class _Reported(msgspec.Struct):
    devices: dict[str, str] = {}  #: the part of a hub's telemetry the devices page reads


def _telemetry_devices(raw: str | None) -> dict[str, str]:
    """Device id -> state from a hub's last telemetry (empty when there is none or it does not parse)."""
    if not raw:
        return {}
    try:
        return msgspec.json.decode(raw, type=_Reported).devices
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}


async def devices(tx: Tx) -> list[dict[str, Any]]:
    """Every device a hub has, from both sides: the cloud inventory and what the hub reports.

    What a hub reports: the devices its readings came from (``devices``), the device states
    of its last telemetry (``hubs.telemetry``) and the configured devices it says are down
    (``hubs.devices_down``, migration 15). Each row gets a :data:`DeviceState` and its
    station's name (``stations.name``; cloud station N is the hub's station id "N").
    """
    hubs_ = {r["hub_id"]: r for r in await tx.fetch("SELECT hub_id, status, telemetry, devices_down FROM hubs")}
    names = {(r["hub_id"], r["station_id"]): r["name"] for r in await tx.fetch(
        "SELECT hub_id, station_id, name FROM stations")}
    seen = {(r["hub_id"], r["device_id"]): r for r in await tx.fetch(
        "SELECT hub_id, device_id, station_id, first_seen_ms FROM devices")}
    told = {(h, d): state for h, r in hubs_.items() for d, state in _telemetry_devices(r["telemetry"]).items()}
    down = {(h, d) for h, r in hubs_.items() for d in (r["devices_down"] or "").split(",") if d}
    revoked = {h for h, r in hubs_.items() if r["status"] == "revoked"}
    rows: list[dict[str, Any]] = []
    configured: set[tuple[str, str]] = set()
    for r in await tx.fetch("SELECT hub_id, station, device_id, kind, transport, address, port, label "
                            "FROM device_inventory"):
        key = (r["hub_id"], r["device_id"])
        configured.add(key)
        heard = key in seen or told.get(key) == "connected"
        state: DeviceState = "reporting" if heard and key not in down else "not_connected"
        rows.append({**dict(r), "station_id": str(r["station"]), "state": state,
                     "first_seen_ms": seen[key]["first_seen_ms"] if key in seen else None})
    for key in sorted((set(seen) | set(told)) - configured):
        hub_id, device_id = key
        if key not in seen and hub_id in revoked:  # a revoked hub's last telemetry is history
            continue
        station_id = seen[key]["station_id"] if key in seen else ""
        rows.append({"hub_id": hub_id, "station": None, "station_id": station_id, "device_id": device_id,
                     "kind": "", "transport": "", "address": "", "port": None, "label": "",
                     "state": "not_configured", "first_seen_ms": seen[key]["first_seen_ms"] if key in seen else None})
    for row in rows:
        row["station_name"] = names.get((row["hub_id"], row["station_id"]), "")
    return sorted(rows, key=lambda x: (x["hub_id"], x["station_id"], x["device_id"]))


async def stations(tx: Tx) -> list[dict[str, Any]]:
    """Stations by hub with their names (for choosing one by name when a device is added)."""
    rows = await tx.fetch("SELECT s.hub_id, s.station_id, s.name FROM stations s JOIN hubs h ON h.hub_id = s.hub_id "
                          "WHERE h.status = 'active' ORDER BY s.hub_id, s.station_id")
    return [dict(r) for r in rows]


async def station_number(db: Database, hub_id: str, name: str, *, actor: str, now: int) -> int:
    """The cloud station number of the hub's station called ``name``; a new name gets the next free number.

    Digits alone name an existing unnamed station by its number (one the hub's readings came
    from). A new station is recorded in ``stations`` with its name (audited ``station.add``).
    """
    name = " ".join(name.split())
    if not 1 <= len(name) <= MAX_STATION_NAME:
        raise DeviceRefused(f"a station needs a name of 1-{MAX_STATION_NAME} characters (e.g. 一诊室)",
                            "station_name")
    async with db.transaction() as tx:
        hub = await tx.fetchrow("SELECT status FROM hubs WHERE hub_id = $1", hub_id)
        if hub is None or hub["status"] != "active":
            raise DeviceRefused(f"no active hub {hub_id!r}", "unknown_hub")
        known = {r["station_id"]: r["name"] for r in await tx.fetch(
            "SELECT station_id, name FROM stations WHERE hub_id = $1", hub_id)}
        for station_id, station_name in known.items():
            if station_name == name or (name == station_id and not station_name):
                if not station_id.isdigit():
                    raise DeviceRefused(f"station {name!r} is set up in the hub's hub.toml; add its devices there",
                                        "station_local")
                return int(station_id)
        used = {int(s) for s in known if s.isdigit()} | {int(r["station"]) for r in await tx.fetch(
            "SELECT DISTINCT station FROM device_inventory WHERE hub_id = $1", hub_id)}
        number = next((n for n in range(1, MAX_STATIONS + 1) if n not in used), None)
        if number is None:
            raise DeviceRefused(f"hub {hub_id!r} has {MAX_STATIONS} stations already", "station_full")
        await tx.execute("INSERT INTO stations (hub_id, station_id, name, first_seen_ms) VALUES ($1, $2, $3, $4)",
                         hub_id, str(number), name, now)
        await audit.write(tx, actor=actor, action="station.add", outcome="ok", hub_id=hub_id, target=hub_id,
                          at_ms=now, detail={"station": str(number), "name": name})
    return number


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


async def remove_device(fleet: Fleet, hub_id: str, device_id: str, *, reason: str, actor: str) -> None:
    """Unregister a device; the reason is required and kept in the audit log (``device.remove``)."""
    reason = " ".join(reason.split())
    if not 1 <= len(reason) <= 200:
        raise ReasonRequired("give a reason for removing the device (kept in the audit log)")
    await fleet.remove_device(actor, hub_id, device_id, reason=reason)
