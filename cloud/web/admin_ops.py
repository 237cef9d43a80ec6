"""What the admin console reads and changes, in one place (each change validated and audited).

Reads are parameterised SQL over the registry tables (one query per listing). Changes go
through the services that own them: :class:`cloud.fleet.service.Fleet` (sites, enrollment
tokens, revocation, key rotation, the device inventory) and :mod:`cloud.users` (accounts,
roles, second factor), which validate and audit them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from cloud import audit
from cloud.db.engine import Database, Tx
from cloud.errors import CloudError, UniqueViolation
from cloud.fleet.service import Fleet
from cloud.fleet.stores import bump_config_version
from provisioning.errors import ReasonRequired
from provisioning.inventory import MAX_STATIONS

MAX_STATION_NAME = 40


class DeviceRefused(CloudError):
    """A device-page change was refused (station name, hub); ``reason`` picks the catalog text, ``params``
    fill it."""

    def __init__(self, message: str, reason: str, **params: str) -> None:
        super().__init__(message)
        self.reason, self.params = reason, params


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


#: devices on one page of the devices page
PAGE = 50
#: a device's place in the list: (hub_id, device_id), the primary key of both device tables
Key = tuple[str, str]


@dataclass(frozen=True)
class DevicePage:
    """One page of the merged device list, in (hub, device) order, and the counts of the whole list."""

    rows: list[dict[str, Any]]
    counts: dict[str, int]  #: per DeviceState, over every device
    total: int
    next_key: Key | None  #: the last row's key when more follow (the next page starts after it)
    prev_key: Key | None  #: the first row's key when more precede (the previous page ends before it)


#: one page of each source by key: after a key going forward (False), before it going back (True); no OFFSET,
#: so a page costs the same wherever it is and a device added meanwhile does not shift the others
_INVENTORY = {
    False: "SELECT x.hub_id, x.station, x.device_id, x.kind, x.transport, x.address, x.port, x.label, d.first_seen_ms "
           "FROM device_inventory x LEFT JOIN devices d ON d.hub_id = x.hub_id AND d.device_id = x.device_id "
           "WHERE (x.hub_id, x.device_id) > ($1, $2) ORDER BY x.hub_id, x.device_id LIMIT $3",
    True: "SELECT x.hub_id, x.station, x.device_id, x.kind, x.transport, x.address, x.port, x.label, d.first_seen_ms "
          "FROM device_inventory x LEFT JOIN devices d ON d.hub_id = x.hub_id AND d.device_id = x.device_id "
          "WHERE (x.hub_id, x.device_id) < ($1, $2) "
          "ORDER BY x.hub_id DESC, x.device_id DESC LIMIT $3",
}
_REPORTED = {
    False: "SELECT x.hub_id, x.device_id, x.station_id, x.first_seen_ms FROM devices x LEFT JOIN device_inventory i "
           "ON i.hub_id = x.hub_id AND i.device_id = x.device_id WHERE i.device_id IS NULL "
           "AND ((x.hub_id, x.device_id) > ($1, $2)) ORDER BY x.hub_id, x.device_id LIMIT $3",
    True: "SELECT x.hub_id, x.device_id, x.station_id, x.first_seen_ms FROM devices x LEFT JOIN device_inventory i "
          "ON i.hub_id = x.hub_id AND i.device_id = x.device_id WHERE i.device_id IS NULL "
          "AND ((x.hub_id, x.device_id) < ($1, $2)) "
          "ORDER BY x.hub_id DESC, x.device_id DESC LIMIT $3",
}


async def devices(tx: Tx, *, after: Key | None = None, before: Key | None = None, limit: int = PAGE) -> DevicePage:
    """One page of every device a hub has, from both sides: the cloud inventory and what the hub reports.

    What a hub reports: the devices its readings came from (``devices``), the device states
    of its last telemetry (``hubs.telemetry``) and the configured devices it says are down
    (``hubs.devices_down``, migration 15). Each row gets a :data:`DeviceState` and its
    station's name (``stations.name``; cloud station N is the hub's station id "N").

    Paging is by key (``after`` the last row shown, or ``before`` the first): each source
    is read from the key on, ``limit + 1`` rows, and merged. The counts read the keys only.
    """
    back = before is not None
    key = before if back else (after or ("", ""))
    hubs_ = {r["hub_id"]: r for r in await tx.fetch("SELECT hub_id, status, telemetry, devices_down FROM hubs")}
    told = {(h, d): state for h, r in hubs_.items() for d, state in _telemetry_devices(r["telemetry"]).items()}
    down = {(h, d) for h, r in hubs_.items() for d in (r["devices_down"] or "").split(",") if d}
    revoked = {h for h, r in hubs_.items() if r["status"] == "revoked"}

    # the counts, over every device (keys only)
    configured = {(r["hub_id"], r["device_id"]): bool(r["seen"]) for r in await tx.fetch(
        "SELECT i.hub_id, i.device_id, d.device_id IS NOT NULL AS seen FROM device_inventory i "
        "LEFT JOIN devices d ON d.hub_id = i.hub_id AND d.device_id = i.device_id")}
    seen_only = {(r["hub_id"], r["device_id"]) for r in await tx.fetch(
        "SELECT x.hub_id, x.device_id FROM devices x LEFT JOIN device_inventory i ON i.hub_id = x.hub_id "
        "AND i.device_id = x.device_id WHERE i.device_id IS NULL")}
    told_only = {k for k in told if k not in configured and k not in seen_only and k[0] not in revoked}

    def state_of(k: Key, seen: bool) -> DeviceState:
        heard = seen or told.get(k) == "connected"
        return "reporting" if heard and k not in down else "not_connected"

    counts = {"reporting": 0, "not_connected": 0, "not_configured": len(seen_only) + len(told_only)}
    for k, seen in configured.items():
        counts[state_of(k, seen)] += 1

    # the page: limit + 1 rows from each source, from the key on
    candidates: list[dict[str, Any]] = []
    for r in await tx.fetch(_INVENTORY[back], key[0], key[1], limit + 1):
        k = (r["hub_id"], r["device_id"])
        candidates.append({**dict(r), "station_id": str(r["station"]),
                           "state": state_of(k, r["first_seen_ms"] is not None)})
    for r in await tx.fetch(_REPORTED[back], key[0], key[1], limit + 1):
        candidates.append(_unconfigured(r["hub_id"], r["device_id"], r["station_id"], r["first_seen_ms"]))
    candidates += [_unconfigured(h, d, "", None) for h, d in told_only
                   if ((h, d) < key if back else (h, d) > key)]
    candidates.sort(key=lambda x: (x["hub_id"], x["device_id"]), reverse=back)
    more = len(candidates) > limit
    rows = candidates[:limit]
    if back:
        rows.reverse()
    names = {(r["hub_id"], r["station_id"]): r["name"] for r in await tx.fetch(
        "SELECT hub_id, station_id, name FROM stations")} if rows else {}
    for row in rows:
        row["station_name"] = names.get((row["hub_id"], row["station_id"]), "")
        row["hub_active"] = row["hub_id"] in hubs_ and row["hub_id"] not in revoked
    first, last = ((rows[0]["hub_id"], rows[0]["device_id"]), (rows[-1]["hub_id"], rows[-1]["device_id"])) \
        if rows else (None, None)
    next_key = last if (more and not back) or (back and rows) else None
    prev_key = first if (more and back) or (not back and after is not None and rows) else None
    return DevicePage(rows, counts, sum(counts.values()), next_key, prev_key)


def _unconfigured(hub_id: str, device_id: str, station_id: str, first_seen_ms: int | None) -> dict[str, Any]:
    """A device a hub reported that the cloud inventory does not have (configured in the hub's own hub.toml)."""
    return {"hub_id": hub_id, "station": None, "station_id": station_id, "device_id": device_id, "kind": "",
            "transport": "", "address": "", "port": None, "label": "", "state": "not_configured",
            "first_seen_ms": first_seen_ms}


async def device(tx: Tx, hub_id: str, device_id: str) -> dict[str, Any] | None:
    """One device of the cloud inventory with its station's name (the removal asks about it), or None."""
    r = await tx.fetchrow("SELECT i.hub_id, i.device_id, i.station, i.address, s.name AS station_name "
                          "FROM device_inventory i LEFT JOIN stations s ON s.hub_id = i.hub_id "
                          "AND s.station_id = CAST(i.station AS TEXT) WHERE i.hub_id = $1 AND i.device_id = $2",
                          hub_id, device_id)
    return None if r is None else {**dict(r), "station_id": str(r["station"]),
                                   "station_name": r["station_name"] or ""}


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
    name = _station_name(name)
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


def _station_name(name: str) -> str:
    name = " ".join(name.split())
    if not 1 <= len(name) <= MAX_STATION_NAME:
        raise DeviceRefused(f"a station needs a name of 1-{MAX_STATION_NAME} characters (e.g. 一诊室)",
                            "station_name")
    return name


async def rename_station(fleet: Fleet, hub_id: str, station_id: str, name: str, *, actor: str, now: int) -> bool:
    """Rename a cloud-numbered station of an active hub; the name is unique per hub (migration 18's index).

    The hub gets it the way it gets every station name: in its configuration (the version is
    bumped and the configuration pushed, :meth:`Fleet.push_config`; a hub offline picks it up at
    its next sync). Audited ``station.rename`` with the old and the new name. Returns whether
    the configuration was pushed now.
    """
    name = _station_name(name)
    try:
        return await _rename_station(fleet, hub_id, station_id, name, actor=actor, now=now)
    except UniqueViolation:  # another admin took the name between our check and our write
        row = await fleet.db.fetchrow("SELECT station_id FROM stations WHERE hub_id = $1 AND name = $2", hub_id, name)
        other = row["station_id"] if row is not None else "?"
        raise DeviceRefused(f"hub {hub_id} already has a station called {name!r} (station {other}); "
                            "choose another name", "station_name_taken", name=name, hub=hub_id,
                            other=str(other)) from None


async def _rename_station(fleet: Fleet, hub_id: str, station_id: str, name: str, *, actor: str, now: int) -> bool:
    async with fleet.db.transaction() as tx:
        hub = await tx.fetchrow("SELECT status FROM hubs WHERE hub_id = $1", hub_id)
        if hub is None or hub["status"] != "active":
            raise DeviceRefused(f"no active hub {hub_id!r}", "unknown_hub")
        if not station_id.isdigit():
            raise DeviceRefused(f"station {station_id!r} is set up in the hub's hub.toml; rename it there",
                                "station_local")
        old = await tx.fetchval("SELECT name FROM stations WHERE hub_id = $1 AND station_id = $2", hub_id, station_id)
        taken = await tx.fetchval("SELECT station_id FROM stations WHERE hub_id = $1 AND name = $2 "
                                  "AND station_id <> $3", hub_id, name, station_id)
        if taken is not None:
            raise DeviceRefused(f"hub {hub_id} already has a station called {name!r} (station {taken}); "
                                "choose another name", "station_name_taken", name=name, hub=hub_id, other=str(taken))
        if old == name:
            return False
        if old is None:
            await tx.execute("INSERT INTO stations (hub_id, station_id, name, first_seen_ms) VALUES ($1, $2, $3, $4)",
                             hub_id, station_id, name, now)
        else:
            await tx.execute("UPDATE stations SET name = $1 WHERE hub_id = $2 AND station_id = $3",
                             name, hub_id, station_id)
        await bump_config_version(tx, hub_id)
        await audit.write(tx, actor=actor, action="station.rename", outcome="ok", hub_id=hub_id, target=hub_id,
                          at_ms=now, detail={"station": station_id, "old": old or "", "name": name})
    return await fleet.push_config(hub_id)


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
