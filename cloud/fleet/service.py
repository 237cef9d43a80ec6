"""Fleet operations as plain async functions: what the admin API, the admin pages and tests call.

Every write runs the provisioning function (:mod:`provisioning.admin`, :mod:`.enrollment`,
:mod:`.rotation`, :mod:`.hubs`) inside ONE database transaction on
:func:`cloud.fleet.stores.sql_stores`, so the change and its audit entry commit together.
``actor`` is the admin's username (``hub:<id>`` for hub requests). Role checks are the
caller's job (:func:`cloud.users.require`): these functions trust their caller.

This is the ONE fleet registry: enrollment, hubs registered by hand (``mchub cloud hub
add``, ``/admin/v1``), key rotation and revocation all go through :class:`Fleet`, so a
revocation always retires every key, drops the MQTT password (rewriting the broker's
password file) and pushes the signed ``revoke`` command, whichever door it came through.

Pushes to hubs (``apply-config`` after a device change, ``rotate-key`` on request) go over
MQTT after the commit; a hub that is offline picks the configuration up at its next sync
(``X-Mchub-Config-Version`` on the batch answer, then ``GET /api/v1/hub/config``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.config import CloudConfig
from cloud.db.engine import Database, epoch_from_db
from cloud.errors import ConfigError
from cloud.fleet.broker_passwords import replace_and_reload
from cloud.fleet.stores import NO_EXPIRY_MS, sql_stores
from cloud.intake.keystore import CloudKeys
from protocol.commands import CommandBody, CommandName, sign_command, topic
from protocol.ids import now_ms, uuid7
from protocol.keys import key_id
from provisioning import admin, hubauth
from provisioning import hubs as hub_ops
from provisioning import mqtt as mqtt_passwords
from provisioning.authority import Authority
from provisioning.bundle import CloudKeys as BundleKeys
from provisioning.bundle import SignedBundle
from provisioning.ca import FleetCA
from provisioning.enrollment import EnrollRequest, EnrollResponse, process_enrollment
from provisioning.errors import CaError, Conflict, NotFound, ProvisioningError, ReasonRequired, RequestError
from provisioning.inventory import SignedConfig, config_command
from provisioning.rotation import RotateRequest, RotateResponse, process_rotation
from provisioning.stores import AuditEntry, DeviceRecord, HubKey, HubRecord, SiteRecord, TokenRecord

log = logging.getLogger("mchub.cloud.fleet")

_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")  #: hub and hand-registered site ids, docs/protocol.md §1


class HubInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One hub as ``mchub cloud hub list`` and ``GET /admin/v1/hubs`` show it."""

    hub_id: str
    site_id: str
    status: str
    online: bool
    last_seen_ms: int | None
    queue_depth: int | None
    key_ids: list[str]  #: hex ids of keys currently valid
    acked_through: dict[int, int]  #: signed epoch -> high-water mark


@dataclass(frozen=True)
class Revocation:
    """What :meth:`Fleet.revoke_hub` did beyond the database."""

    hub: hub_ops.HubRow
    broker_updated: bool  #: the broker's password file was rewritten and reloaded
    pushed: bool  #: the signed ``revoke`` command reached the broker


def _check_id(what: str, value: str) -> None:
    if not _ID.fullmatch(value):
        raise RequestError(f"{what} id {value!r} must be 1-64 characters of A-Z a-z 0-9 . _ -")


def _check_key(public_key: bytes) -> str:
    if len(public_key) != 32:
        raise RequestError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise RequestError(f"not an Ed25519 public key: {exc}") from exc
    return key_id(public_key).hex()


class ProvisioningDisabled(ProvisioningError):
    """This cloud has no fleet CA configured, so it cannot enroll or rotate hubs."""

    reason = "provisioning_disabled"
    status = 404


def load_authority(cfg: CloudConfig, keys: CloudKeys, *, at_ms: int | None = None) -> Authority | None:
    """Open the fleet CA of ``[provisioning]`` and sign the bundle of this cloud's keys (None: not configured)."""
    p = cfg.provisioning
    if p.ca_dir is None or p.passphrase_file is None:
        return None
    try:
        lines = p.passphrase_file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{cfg.path}: [provisioning] passphrase_file: cannot read {p.passphrase_file}: "
                          f"{exc.strerror}.\n  Fix: create it (mode 0600) with the CA passphrase") from exc
    try:
        ca = FleetCA.load(p.ca_dir, (lines[0] if lines else "").encode())
    except CaError as exc:
        raise ConfigError(f"{cfg.path}: [provisioning] ca_dir: {exc}.\n  Fix: check ca_dir and "
                          "passphrase_file, or run `mchub provision ca init --dir ...`") from exc
    bundle_keys = BundleKeys(tuple(keys.published.values()), keys.signing.public_key())
    # a cloud without [mqtt] hands hubs no broker: they would only show it as unreachable
    mqtt_url = p.mqtt_url if cfg.mqtt.enabled else ""
    return Authority.build(ca, bundle_keys, keys.signing, mqtt_url=mqtt_url, now_ms=now_ms() if at_ms is None
                           else at_ms, hub_validity_ms=p.hub_cert_days * 86_400_000,
                           overlap_ms=p.rotation_overlap_hours * 3_600_000)


@dataclass(eq=False)
class Fleet:
    """The database, the authority (None when provisioning is off) and where to push commands."""

    db: Database
    authority: Authority | None
    signing_key: ed25519.Ed25519PrivateKey
    mqtt: tuple[str, int] | None = None  #: broker for pushes; None: hubs pick changes up at their next sync
    clock: Callable[[], int] = now_ms
    broker_passwords: Path | None = None  #: Mosquitto password_file to rewrite after enrollment and revocation
    broker_reload: tuple[str, ...] = ()  #: command that makes the broker re-read it

    @classmethod
    def from_config(cls, cfg: CloudConfig, db: Database, keys: CloudKeys, *, with_authority: bool = True) -> Fleet:
        """Build from cloud.toml ([provisioning] and [mqtt]); the CLI skips opening the CA (no enrollment there)."""
        broker = (cfg.mqtt.host, cfg.mqtt.port) if cfg.mqtt.enabled else None
        p = cfg.provisioning
        return cls(db, load_authority(cfg, keys) if with_authority else None, keys.signing, broker,
                   broker_passwords=p.mqtt_password_file, broker_reload=p.mqtt_reload_command)

    def _authority(self) -> Authority:
        if self.authority is None:
            raise ProvisioningDisabled("此云端未配置注册 CA / hub enrollment is not configured on this cloud: set "
                                       "[provisioning] ca_dir and passphrase_file in cloud.toml")
        return self.authority

    # --- sites and tokens ------------------------------------------------------------------

    async def sites(self) -> list[SiteRecord]:
        """Every site."""
        return await sql_stores(self.db).sites.list()

    async def add_site(self, actor: str, site_id: str, name: str) -> SiteRecord:
        """Register a site (audited)."""
        async with self.db.transaction() as tx:
            return await admin.add_site(sql_stores(tx), site_id=site_id, name=name, actor=actor, now_ms=self.clock())

    async def tokens(self, site_id: str | None = None) -> list[TokenRecord]:
        """Enrollment tokens (their digests stay here: callers show :func:`token_info`)."""
        return await sql_stores(self.db).tokens.list(site_id)

    async def create_token(self, actor: str, site_id: str, *, expires_in_s: int = 86_400,
                           hub_serial: str | None = None) -> admin.CreatedToken:
        """Mint a one-time token; its text is in the answer only."""
        if not 1 <= expires_in_s <= 30 * 86_400:
            raise ProvisioningError("expires_in_s must be 1 s to 30 days")
        async with self.db.transaction() as tx:
            return await admin.create_token(sql_stores(tx), site_id=site_id, actor=actor, now_ms=self.clock(),
                                            lifetime_ms=expires_in_s * 1000, hub_serial=hub_serial)

    # --- hubs ------------------------------------------------------------------------------

    async def hubs(self) -> list[hub_ops.HubRow]:
        """Every hub: site, status, certificate expiry, last seen (MQTT presence, request or last batch)."""
        now = self.clock()
        async with self.db.transaction() as tx:
            hubs = await sql_stores(tx).hubs.list()
            batches = {r["hub_id"]: r["at"] for r in await tx.fetch(
                "SELECT hub_id, MAX(last_batch_ms) AS at FROM sync_state GROUP BY hub_id")}
        rows = [hub_ops.hub_row(h, now) for h in hubs]
        return [msgspec.structs.replace(r, last_seen_ms=max(r.last_seen_ms or 0, batches.get(r.hub_id) or 0) or None)
                for r in rows]

    async def hub(self, hub_id: str) -> hub_ops.HubRow:
        """One hub."""
        hub = await sql_stores(self.db).hubs.get(hub_id)
        if hub is None:
            raise NotFound(f"no hub {hub_id!r}; `mchub provision hub list` shows the enrolled hubs")
        return hub_ops.hub_row(hub, self.clock())

    async def revoke(self, actor: str, hub_id: str, reason: str) -> hub_ops.HubRow:
        """Take a hub out of service (see :meth:`revoke_hub`); returns its row."""
        return (await self.revoke_hub(actor, hub_id, reason)).hub

    async def revoke_hub(self, actor: str, hub_id: str, reason: str) -> Revocation:
        """Revoke every credential the hub holds; the only revocation path (CLI, /admin/v1, API, console).

        In one transaction: status ``revoked`` (its next batch, config fetch or rotation is
        refused, 403), every key retired, MQTT password hash dropped, audited. Then the
        signed ``revoke`` command is pushed (best effort: a running hub stops at once) and
        the broker's password file is rewritten and reloaded (the login, and with Mosquitto
        2 the live session, goes).
        """
        if not reason.strip():
            raise ReasonRequired("give a reason for the revocation (kept in the audit log)")
        now = self.clock()
        async with self.db.transaction() as tx:
            hub = await hub_ops.revoke_hub(sql_stores(tx), hub_id, actor=actor, reason=reason, now_ms=now)
        body = CommandBody(id=uuid7(now), hub_id=hub_id, name="revoke", issued_ms=now, expires_ms=now + 86_400_000,
                           args={"reason": reason[:200]})
        # push first: the broker's reload below also cuts the hub's live session (Mosquitto 2 re-checks
        # connected clients against the new password file), after which nothing reaches it
        pushed = await self._publish(hub_id, sign_command(body, self.signing_key))
        broker_updated = await self.write_broker_passwords()
        return Revocation(hub_ops.hub_row(hub, now), broker_updated, pushed)

    # --- hubs registered by hand (no fleet CA): `mchub cloud hub add`, /admin/v1 ------------

    async def ensure_site(self, actor: str, site_id: str, name: str = "") -> bool:
        """Create a site for hand-registered hubs if it is missing (idempotent); True when created."""
        _check_id("site", site_id)
        async with self.db.transaction() as tx:
            stores = sql_stores(tx)
            if await stores.sites.get(site_id) is not None:
                return False
            try:
                await stores.sites.add(SiteRecord(site_id=site_id, name=name, created_ms=self.clock()))
            except Conflict:
                return False  # created concurrently
            await stores.audit.append(AuditEntry(at_ms=self.clock(), actor=actor, action="site.add",
                                                 target=site_id, detail={"name": name}))
        return True

    async def register_hub(self, actor: str, hub_id: str, *, site_id: str, public_key: bytes) -> str:
        """Register a hub with its Ed25519 key, without a certificate; returns the key id (hex)."""
        _check_id("hub", hub_id)
        kid = _check_key(public_key)
        now = self.clock()
        async with self.db.transaction() as tx:
            stores = sql_stores(tx)
            if await stores.sites.get(site_id) is None:
                raise NotFound(f"site {site_id!r} does not exist; create it first (mchub cloud site add)")
            key = HubKey(key_id=kid, public_raw=public_key, cert_pem="", cert_serial="", not_after_ms=NO_EXPIRY_MS,
                         added_ms=now)
            try:
                await stores.hubs.create(HubRecord(hub_id=hub_id, site_id=site_id, serial="", enrolled_ms=now,
                                                   keys=(key,)))
            except Conflict as exc:
                raise Conflict(f"hub {hub_id!r} is already registered; use add-key to rotate its key") from exc
            await stores.audit.append(AuditEntry(at_ms=now, actor=actor, action="hub.register", target=hub_id,
                                                 detail={"site_id": site_id, "key_id": kid}))
        return kid

    async def add_key(self, actor: str, hub_id: str, public_key: bytes, *, valid_to_ms: int | None = None) -> str:
        """Add another key to an active hub (hand rotation: both verify until one is expired); returns its id."""
        kid = _check_key(public_key)
        now = self.clock()
        async with self.db.transaction() as tx:
            stores = sql_stores(tx)
            hub = await admin.active_hub(stores, hub_id)
            if any(k.key_id == kid for k in hub.keys):
                raise Conflict(f"hub {hub_id!r} already has key {kid}")
            key = HubKey(key_id=kid, public_raw=public_key, cert_pem="", cert_serial="", not_after_ms=NO_EXPIRY_MS,
                         added_ms=now, retire_ms=valid_to_ms)
            await stores.hubs.save(msgspec.structs.replace(hub, keys=(*hub.keys, key)))
            await stores.audit.append(AuditEntry(at_ms=now, actor=actor, action="hub.key.add", target=hub_id,
                                                 detail={"key_id": kid}))
        return kid

    async def expire_key(self, actor: str, hub_id: str, kid: str, *, at_ms: int | None = None) -> None:
        """End a key's validity at ``at_ms`` (default now), e.g. after a rotation overlap."""
        at = self.clock() if at_ms is None else at_ms
        async with self.db.transaction() as tx:
            stores = sql_stores(tx)
            hub = await stores.hubs.get(hub_id)
            if hub is None or not any(k.key_id == kid for k in hub.keys):
                raise NotFound(f"hub {hub_id!r} has no key {kid}")
            keys = tuple(msgspec.structs.replace(k, retire_ms=at) if k.key_id == kid else k for k in hub.keys)
            await stores.hubs.save(msgspec.structs.replace(hub, keys=keys))
            await stores.audit.append(AuditEntry(at_ms=self.clock(), actor=actor, action="hub.key.expire",
                                                 target=hub_id, detail={"key_id": kid}))

    async def hub_infos(self, site_id: str | None = None) -> list[HubInfo]:
        """Every hub (of one site) with its currently valid key ids and marks (three queries)."""
        now = self.clock()
        async with self.db.transaction() as tx:
            hubs = await tx.fetch("SELECT hub_id, site_id, status, online, last_seen_ms, queue_depth FROM hubs "
                                  "WHERE $1 = '' OR site_id = $2 ORDER BY hub_id", site_id or "", site_id or "")
            keys: dict[str, list[str]] = {}
            for k in await tx.fetch("SELECT hub_id, key_id FROM hub_keys WHERE revoked_ms IS NULL AND "
                                    "valid_from_ms <= $1 AND (valid_to_ms IS NULL OR valid_to_ms > $2) AND "
                                    "(not_after_ms IS NULL OR not_after_ms >= $3) ORDER BY id", now, now, now):
                keys.setdefault(k["hub_id"], []).append(k["key_id"])
            marks: dict[str, dict[int, int]] = {}
            for m in await tx.fetch("SELECT hub_id, epoch, acked_through FROM sync_state"):
                marks.setdefault(m["hub_id"], {})[epoch_from_db(m["epoch"])] = m["acked_through"]
        return [HubInfo(hub_id=h["hub_id"], site_id=h["site_id"], status=h["status"], online=bool(h["online"]),
                        last_seen_ms=h["last_seen_ms"], queue_depth=h["queue_depth"],
                        key_ids=keys.get(h["hub_id"], []), acked_through=marks.get(h["hub_id"], {})) for h in hubs]

    async def request_rotation(self, actor: str, hub_id: str) -> bool:
        """Ask a hub to rotate its key now (``rotate-key`` over MQTT); True when the command was published."""
        return await self.send_command(actor, hub_id, "rotate-key", action="hub.rotate.request") is not None

    async def send_command(self, actor: str, hub_id: str, name: CommandName, args: dict[str, str] | None = None,
                           *, ttl_s: int = 3600, action: str = "hub.command") -> CommandBody | None:
        """Sign and push one command to an ACTIVE hub (a revoked or unknown hub is refused); audited.

        Returns what was sent, or None when no broker took it (no ``[mqtt]``, or it failed: logged).
        """
        now = self.clock()
        async with self.db.transaction() as tx:
            stores = sql_stores(tx)
            await admin.active_hub(stores, hub_id)
            await stores.audit.append(AuditEntry(at_ms=now, actor=actor, action=action, target=hub_id,
                                                 detail={"command": name}))
        body = CommandBody(id=uuid7(now), hub_id=hub_id, name=name, issued_ms=now, expires_ms=now + ttl_s * 1000,
                           args=args or {})
        return body if await self._publish(hub_id, sign_command(body, self.signing_key)) else None

    # --- devices ---------------------------------------------------------------------------

    async def devices(self, hub_id: str) -> tuple[list[DeviceRecord], int]:
        """The hub's devices and configuration version."""
        stores = sql_stores(self.db)
        return await stores.devices.list(hub_id), await stores.devices.config_version(hub_id)

    async def add_device(self, actor: str, hub_id: str, **fields: Any) -> tuple[DeviceRecord, int, bool]:
        """Register a device; returns it, the new version and whether the configuration was pushed."""
        async with self.db.transaction() as tx:
            device, version = await admin.add_device(sql_stores(tx), actor=actor, now_ms=self.clock(), hub_id=hub_id,
                                                     **fields)
        return device, version, await self.push_config(hub_id)

    async def remove_device(self, actor: str, hub_id: str, device_id: str, *, reason: str = "") -> tuple[int, bool]:
        """Unregister a device (``reason`` kept in the audit log); returns the new version and whether it was pushed."""
        async with self.db.transaction() as tx:
            version = await admin.remove_device(sql_stores(tx), actor=actor, now_ms=self.clock(), hub_id=hub_id,
                                                device_id=device_id, reason=reason)
        return version, await self.push_config(hub_id)

    async def push_config(self, hub_id: str) -> bool:
        """Publish the hub's signed configuration as ``apply-config`` (False: no broker, or it failed)."""
        if self.mqtt is None:
            return False
        signed = await self.config_for(hub_id)
        return await self._publish(hub_id, config_command(signed, self.signing_key, hub_id=hub_id,
                                                          now_ms=self.clock()))

    async def config_for(self, hub_id: str) -> SignedConfig:
        """The hub's current configuration document, signed with the cloud key."""
        stores = sql_stores(self.db)
        hub = await admin.active_hub(stores, hub_id)
        return await self._authority().config_for(stores, hub, now_ms=self.clock())

    async def _publish(self, hub_id: str, payload: bytes) -> bool:
        if self.mqtt is None:
            return False
        host, port = self.mqtt
        try:
            async with aiomqtt.Client(host, port, identifier=f"mchub-cloud-fleet-{os.getpid()}-{uuid7()[-8:]}",
                                      timeout=10) as c:
                await c.publish(topic(hub_id, "commands"), payload, qos=1)
        except aiomqtt.MqttError as exc:
            log.warning("could not push to hub %s over MQTT %s:%d: %s (it picks changes up at its next sync)",
                        hub_id, host, port, exc)
            return False
        return True

    async def audit(self, target: str | None = None, limit: int = 200) -> list[AuditEntry]:
        """The most recent audit entries (of one target), oldest first."""
        return await sql_stores(self.db).audit.list(target, limit)

    # --- hub requests ----------------------------------------------------------------------

    async def enroll(self, request: EnrollRequest) -> EnrollResponse:
        """``POST /api/v1/enroll``: one transaction; a lost race for a hub id is retried once."""
        authority = self._authority()
        for attempt in (1, 2):
            try:
                async with self.db.transaction() as tx:
                    answer = await process_enrollment(request, sql_stores(tx), authority, now_ms=self.clock())
                await self.write_broker_passwords()  # the hub's (new) MQTT password
                return answer
            except Conflict:
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def write_broker_passwords(self) -> bool:
        """Rewrite the broker's password_file from the hub table (active hubs only), then reload the broker.

        Atomic (temporary file + rename, keeping the old file's owner and mode); False when
        not configured or the reload failed (logged; the next enrollment or revocation retries).
        """
        if self.broker_passwords is None:
            return False
        text = mqtt_passwords.password_file(hub_ops.mqtt_password_entries(await sql_stores(self.db).hubs.list()))
        return await asyncio.to_thread(replace_and_reload, self.broker_passwords, text, self.broker_reload)

    async def rotate(self, request: RotateRequest) -> RotateResponse:
        """``POST /api/v1/rotate``."""
        authority = self._authority()
        async with self.db.transaction() as tx:
            return await process_rotation(request, sql_stores(tx), authority, now_ms=self.clock())

    async def hub_config(self, headers: Mapping[str, str], *, method: str, path: str,
                         body: bytes) -> tuple[SignedConfig, SignedBundle]:
        """``GET /api/v1/hub/config``: a signed hub request (refused for revoked hubs and retired keys)."""
        authority = self._authority()
        signed = hubauth.parse_headers(headers)
        now = self.clock()
        async with self.db.transaction() as tx:
            stores = sql_stores(tx)
            hub = hubauth.verify_request(signed, await stores.hubs.get(signed.hub_id), method=method, path=path,
                                         body=body, now_ms=now)
            hub = await hub_ops.touch(stores, hub, now_ms=now)
            return await authority.config_for(stores, hub, now_ms=now), authority.bundle
