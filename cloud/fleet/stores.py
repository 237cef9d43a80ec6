"""The provisioning store protocols (:mod:`provisioning.stores`) on the cloud database.

One implementation for PostgreSQL and SQLite, over the tables of migrations 1 and 3:

=================  ==========================================================================
protocol           tables
=================  ==========================================================================
``SiteStore``      ``sites``
``TokenStore``     ``enroll_tokens`` (the digest only; ``mark_used`` is a conditional UPDATE)
``HubStore``       ``hubs`` + ``hub_keys`` — the SAME rows batch ingest looks keys up in
                   (:func:`cloud.fleet.registry.lookup_signer`), so enrollment, rotation and
                   revocation take effect on the very next batch
``DeviceStore``    ``device_inventory`` + ``hub_config_versions``
``AuditLog``       ``audit_log`` (``target`` column; ``hub_id`` set for hub and device actions)
=================  ==========================================================================

:func:`sql_stores` takes either an open transaction (every call joins it: use this for
``process_enrollment`` and friends, which must commit all or nothing) or a
:class:`~cloud.db.engine.Database` (every call is its own transaction). Inserts use
``ON CONFLICT DO NOTHING`` and report a duplicate as ``provisioning.errors.Conflict``,
so a duplicate never aborts a PostgreSQL transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from cloud import audit
from cloud.db.engine import Database, Row, Tx
from provisioning.errors import Conflict, NotFound
from provisioning.stores import AuditEntry, DeviceRecord, HubKey, HubRecord, SiteRecord, Stores, TokenRecord

NO_EXPIRY_MS = 1 << 62  #: not_after of a key registered without a certificate (mchub cloud hub add)
_Options = dict[str, str | int | float | bool]


class _On:
    """Run statements in the given transaction, or each call in a transaction of its own."""

    def __init__(self, target: Database | Tx) -> None:
        self.target = target

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[Tx]:
        if isinstance(self.target, Tx):
            yield self.target
        else:
            async with self.target.transaction() as tx:
                yield tx


class SqlSites(_On):
    """``SiteStore`` on ``sites``."""

    async def add(self, site: SiteRecord) -> None:
        async with self.tx() as tx:
            n = await tx.execute("INSERT INTO sites (site_id, name, created_ms) VALUES ($1, $2, $3) "
                                 "ON CONFLICT (site_id) DO NOTHING", site.site_id, site.name, site.created_ms)
        if n == 0:
            raise Conflict(f"site {site.site_id} already exists")

    async def get(self, site_id: str) -> SiteRecord | None:
        async with self.tx() as tx:
            r = await tx.fetchrow("SELECT site_id, name, created_ms FROM sites WHERE site_id = $1", site_id)
        return None if r is None else SiteRecord(site_id=r["site_id"], name=r["name"], created_ms=r["created_ms"])

    async def list(self) -> list[SiteRecord]:
        async with self.tx() as tx:
            rows = await tx.fetch("SELECT site_id, name, created_ms FROM sites ORDER BY site_id")
        return [SiteRecord(site_id=r["site_id"], name=r["name"], created_ms=r["created_ms"]) for r in rows]




def _token(r: Row) -> TokenRecord:
    return TokenRecord(token_id=r["token_id"], digest=bytes(r["digest"]), site_id=r["site_id"],
                       hub_serial=r["hub_serial"], created_ms=r["created_ms"], expires_ms=r["expires_ms"],
                       created_by=r["created_by"], used_ms=r["used_ms"], used_by_hub=r["used_by_hub"],
                       used_key=r["used_key"])


class SqlTokens(_On):
    """``TokenStore`` on ``enroll_tokens``."""

    async def add(self, record: TokenRecord) -> None:
        async with self.tx() as tx:
            n = await tx.execute(
                "INSERT INTO enroll_tokens (token_id, digest, site_id, hub_serial, created_ms, expires_ms, created_by, "
                "used_ms, used_by_hub, used_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                "ON CONFLICT (token_id) DO NOTHING", record.token_id, record.digest, record.site_id, record.hub_serial,
                record.created_ms, record.expires_ms, record.created_by, record.used_ms, record.used_by_hub,
                record.used_key)
        if n == 0:
            raise Conflict(f"token id {record.token_id} is taken")

    async def get(self, token_id: str) -> TokenRecord | None:
        async with self.tx() as tx:
            r = await tx.fetchrow("SELECT token_id, digest, site_id, hub_serial, created_ms, expires_ms, created_by, "
                                  "used_ms, used_by_hub, used_key FROM enroll_tokens WHERE token_id = $1", token_id)
        return None if r is None else _token(r)

    async def mark_used(self, token_id: str, hub_id: str, key_fingerprint: str, at_ms: int) -> bool:
        async with self.tx() as tx:
            n = await tx.execute("UPDATE enroll_tokens SET used_ms = $1, used_by_hub = $2, used_key = $3 "
                                 "WHERE token_id = $4 AND used_ms IS NULL", at_ms, hub_id, key_fingerprint, token_id)
        return n == 1

    async def list(self, site_id: str | None = None) -> list[TokenRecord]:
        async with self.tx() as tx:
            rows = await tx.fetch("SELECT token_id, digest, site_id, hub_serial, created_ms, expires_ms, created_by, "
                                  "used_ms, used_by_hub, used_key FROM enroll_tokens WHERE CAST($1 AS TEXT) IS NULL OR "
                                  "site_id = $2 ORDER BY created_ms DESC, token_id", site_id, site_id)
        return [_token(r) for r in rows]




def _key(r: Row) -> HubKey:
    ends = [t for t in (r["valid_to_ms"], r["revoked_ms"]) if t is not None]
    return HubKey(key_id=r["key_id"], public_raw=bytes(r["public_key"]), cert_pem=r["cert_pem"],
                  cert_serial=r["cert_serial"], not_after_ms=r["not_after_ms"] or NO_EXPIRY_MS,
                  added_ms=r["created_ms"], retire_ms=min(ends) if ends else None)


def _hub(r: Row, keys: list[HubKey]) -> HubRecord:
    return HubRecord(hub_id=r["hub_id"], site_id=r["site_id"], serial=r["serial"], status=r["status"],
                     enrolled_ms=r["created_ms"], keys=tuple(keys), mqtt_password_hash=r["mqtt_password_hash"],
                     last_seen_ms=r["last_seen_ms"], revoked_ms=r["revoked_ms"], revoked_by=r["revoked_by"],
                     revoked_reason=r["revoked_reason"], enroll_token=r["enroll_token"])


class SqlHubs(_On):
    """``HubStore`` on ``hubs`` and ``hub_keys`` (the rows ingest verifies batches with)."""

    async def get(self, hub_id: str) -> HubRecord | None:
        async with self.tx() as tx:
            r = await tx.fetchrow("SELECT hub_id, site_id, serial, status, created_ms, mqtt_password_hash, "
                                  "last_seen_ms, revoked_ms, revoked_by, revoked_reason, enroll_token FROM hubs WHERE "
                                  "hub_id = $1", hub_id)
            if r is None:
                return None
            keys = await tx.fetch("SELECT hub_id, key_id, public_key, cert_pem, cert_serial, not_after_ms, created_ms, "
                                  "valid_to_ms, revoked_ms FROM hub_keys WHERE hub_id = $1 ORDER BY id", hub_id)
        return _hub(r, [_key(k) for k in keys])

    async def create(self, hub: HubRecord) -> None:
        async with self.tx() as tx:
            n = await tx.execute(
                "INSERT INTO hubs (hub_id, site_id, serial, status, created_ms, mqtt_password_hash, last_seen_ms, "
                "revoked_ms, revoked_by, revoked_reason, enroll_token) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
                "$10, $11) "
                "ON CONFLICT (hub_id) DO NOTHING", hub.hub_id, hub.site_id, hub.serial, hub.status, hub.enrolled_ms,
                hub.mqtt_password_hash, hub.last_seen_ms, hub.revoked_ms, hub.revoked_by, hub.revoked_reason,
                hub.enroll_token)
            if n == 0:
                raise Conflict(f"hub {hub.hub_id} already exists")
            await self._save_keys(tx, hub)

    async def save(self, hub: HubRecord) -> None:
        async with self.tx() as tx:
            n = await tx.execute(
                "UPDATE hubs SET site_id = $1, serial = $2, status = $3, created_ms = $4, mqtt_password_hash = $5, "
                "last_seen_ms = $6, revoked_ms = $7, revoked_by = $8, revoked_reason = $9, enroll_token = $10 "
                "WHERE hub_id = $11", hub.site_id, hub.serial, hub.status, hub.enrolled_ms, hub.mqtt_password_hash,
                hub.last_seen_ms, hub.revoked_ms, hub.revoked_by, hub.revoked_reason, hub.enroll_token, hub.hub_id)
            if n == 0:
                raise NotFound(f"no hub {hub.hub_id} to save")
            await self._save_keys(tx, hub)

    @staticmethod
    async def _save_keys(tx: Tx, hub: HubRecord) -> None:
        await tx.executemany(
            "INSERT INTO hub_keys (hub_id, key_id, public_key, valid_from_ms, valid_to_ms, created_ms, cert_pem, "
            "cert_serial, not_after_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (hub_id, key_id) "
            "DO UPDATE SET valid_to_ms = excluded.valid_to_ms, cert_pem = excluded.cert_pem, "
            "cert_serial = excluded.cert_serial, not_after_ms = excluded.not_after_ms",
            [(hub.hub_id, k.key_id, k.public_raw, 0, k.retire_ms, k.added_ms, k.cert_pem, k.cert_serial,
              None if k.not_after_ms >= NO_EXPIRY_MS else k.not_after_ms) for k in hub.keys])
        kept = {k.key_id for k in hub.keys}
        for r in await tx.fetch("SELECT key_id FROM hub_keys WHERE hub_id = $1", hub.hub_id):
            if r["key_id"] not in kept:
                await tx.execute("DELETE FROM hub_keys WHERE hub_id = $1 AND key_id = $2", hub.hub_id, r["key_id"])

    async def list(self) -> list[HubRecord]:
        async with self.tx() as tx:
            hubs = await tx.fetch("SELECT hub_id, site_id, serial, status, created_ms, mqtt_password_hash, "
                                  "last_seen_ms, revoked_ms, revoked_by, revoked_reason, enroll_token FROM hubs ORDER "
                                  "BY hub_id")
            keys: dict[str, list[HubKey]] = {}
            for k in await tx.fetch("SELECT hub_id, key_id, public_key, cert_pem, cert_serial, not_after_ms, "
                                    "created_ms, valid_to_ms, revoked_ms FROM hub_keys ORDER BY id"):
                keys.setdefault(k["hub_id"], []).append(_key(k))
        return [_hub(h, keys.get(h["hub_id"], [])) for h in hubs]




def _device(r: Row) -> DeviceRecord:
    return DeviceRecord(device_id=r["device_id"], hub_id=r["hub_id"], station=r["station"], kind=r["kind"],
                        transport=r["transport"], address=r["address"], port=r["port"], dialect=r["dialect"],
                        options=msgspec.json.decode(r["options"], type=_Options), label=r["label"])


async def bump_config_version(tx: Tx, hub_id: str) -> int:
    """The hub's configuration changed (a device, a station's name): its next version number."""
    version = await tx.fetchval(
        "INSERT INTO hub_config_versions (hub_id, version) VALUES ($1, 1) ON CONFLICT (hub_id) "
        "DO UPDATE SET version = hub_config_versions.version + 1 RETURNING version", hub_id)
    return int(version)


class SqlDevices(_On):
    """``DeviceStore`` on ``device_inventory`` and ``hub_config_versions``."""

    _bump = staticmethod(bump_config_version)

    async def add(self, device: DeviceRecord) -> int:
        async with self.tx() as tx:
            n = await tx.execute(
                "INSERT INTO device_inventory (hub_id, device_id, station, kind, transport, address, port, dialect, "
                "options, label) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                "ON CONFLICT (hub_id, device_id) DO NOTHING", device.hub_id, device.device_id, device.station,
                device.kind, device.transport, device.address, device.port, device.dialect,
                msgspec.json.encode(device.options).decode(), device.label)
            if n == 0:
                raise Conflict(f"hub {device.hub_id} already has a device {device.device_id}")
            return await self._bump(tx, device.hub_id)

    async def remove(self, hub_id: str, device_id: str) -> int:
        async with self.tx() as tx:
            n = await tx.execute("DELETE FROM device_inventory WHERE hub_id = $1 AND device_id = $2", hub_id,
                                 device_id)
            if n == 0:
                raise NotFound(f"no device {device_id} on hub {hub_id}")
            return await self._bump(tx, hub_id)

    async def list(self, hub_id: str) -> list[DeviceRecord]:
        async with self.tx() as tx:
            rows = await tx.fetch("SELECT hub_id, device_id, station, kind, transport, address, port, dialect, "
                                  "options, label FROM device_inventory WHERE hub_id = $1 "
                                  "ORDER BY station, device_id", hub_id)
        return [_device(r) for r in rows]

    async def config_version(self, hub_id: str) -> int:
        async with self.tx() as tx:
            version = await tx.fetchval("SELECT version FROM hub_config_versions WHERE hub_id = $1", hub_id)
        return int(version or 0)

    async def station_names(self, hub_id: str) -> dict[int, str]:
        async with self.tx() as tx:  # named on the devices page (cloud.web.admin_ops.station_number)
            rows = await tx.fetch("SELECT station_id, name FROM stations WHERE hub_id = $1 AND name <> ''", hub_id)
        return {int(r["station_id"]): r["name"] for r in rows if r["station_id"].isdigit()}


def _detail(text: str) -> dict[str, str]:
    try:
        doc = msgspec.json.decode(text)
    except msgspec.DecodeError:
        return {"detail": text}
    return {str(k): v if isinstance(v, str) else msgspec.json.encode(v).decode() for k, v in doc.items()} \
        if isinstance(doc, dict) else {}


class SqlAudit(_On):
    """``AuditLog`` on ``audit_log`` (shared with ingest, registry and users)."""

    async def append(self, entry: AuditEntry) -> None:
        hub = entry.target if entry.action.startswith(("hub.", "device.")) else None
        async with self.tx() as tx:
            await audit.write(tx, actor=entry.actor, action=entry.action, outcome="ok", hub_id=hub,
                              target=entry.target, at_ms=entry.at_ms, reason=entry.detail.get("reason"),
                              detail=dict(entry.detail))

    async def list(self, target: str | None = None, limit: int = 200) -> list[AuditEntry]:
        async with self.tx() as tx:
            rows = await tx.fetch("SELECT at_ms, actor, action, target, hub_id, detail FROM audit_log WHERE "
                                  "CAST($1 AS TEXT) IS NULL OR target = $2 OR hub_id = $3 ORDER BY id DESC LIMIT $4",
                                  target, target, target, max(1, min(int(limit), 10_000)))
        return [AuditEntry(at_ms=r["at_ms"], actor=r["actor"], action=r["action"],
                           target=r["target"] or r["hub_id"] or "", detail=_detail(r["detail"]))
                for r in reversed(rows)]


def sql_stores(target: Database | Tx) -> Stores:
    """The five stores on one open transaction, or on a database (one transaction per call)."""
    return Stores(SqlSites(target), SqlTokens(target), SqlHubs(target), SqlDevices(target), SqlAudit(target))
