"""Fleet operations as plain async functions: what the admin API, the admin pages and tests call.

Every write runs the provisioning function (:mod:`provisioning.admin`, :mod:`.enrollment`,
:mod:`.rotation`, :mod:`.hubs`) inside ONE database transaction on
:func:`cloud.fleet.stores.sql_stores`, so the change and its audit entry commit together.
``actor`` is the admin's username (``hub:<id>`` for hub requests). Role checks are the
caller's job (:func:`cloud.users.require`): these functions trust their caller.

Pushes to hubs (``apply-config`` after a device change, ``rotate-key`` on request) go over
MQTT after the commit; a hub that is offline picks the configuration up at its next sync
(``X-Mchub-Config-Version`` on the batch answer, then ``GET /api/v1/hub/config``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.config import CloudConfig
from cloud.db.engine import Database
from cloud.errors import ConfigError
from cloud.fleet.stores import sql_stores
from cloud.keystore import CloudKeys
from protocol.commands import CommandBody, sign_command, topic
from protocol.ids import now_ms, uuid7
from provisioning import admin, hubauth
from provisioning import hubs as hub_ops
from provisioning import mqtt as mqtt_passwords
from provisioning.authority import Authority
from provisioning.bundle import CloudKeys as BundleKeys
from provisioning.bundle import SignedBundle
from provisioning.ca import FleetCA
from provisioning.enrollment import EnrollRequest, EnrollResponse, process_enrollment
from provisioning.errors import CaError, Conflict, NotFound, ProvisioningError
from provisioning.inventory import SignedConfig, config_command
from provisioning.rotation import RotateRequest, RotateResponse, process_rotation
from provisioning.stores import AuditEntry, DeviceRecord, SiteRecord, TokenRecord

log = logging.getLogger("mchub.cloud.fleet")


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
    def from_config(cls, cfg: CloudConfig, db: Database, keys: CloudKeys) -> Fleet:
        """Build from cloud.toml ([provisioning] and [mqtt])."""
        broker = (cfg.mqtt.host, cfg.mqtt.port) if cfg.mqtt.enabled else None
        p = cfg.provisioning
        return cls(db, load_authority(cfg, keys), keys.signing, broker, broker_passwords=p.mqtt_password_file,
                   broker_reload=p.mqtt_reload_command)

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
        """Take a hub out of service: its next batch, config fetch or rotation is refused (403)."""
        if not reason.strip():
            raise ProvisioningError("give a reason for the revocation (kept in the audit log)")
        now = self.clock()
        async with self.db.transaction() as tx:
            hub = await hub_ops.revoke_hub(sql_stores(tx), hub_id, actor=actor, reason=reason, now_ms=now)
        await self.write_broker_passwords()  # its MQTT login goes at the broker's reload
        body = CommandBody(id=uuid7(now), hub_id=hub_id, name="revoke", issued_ms=now, expires_ms=now + 86_400_000,
                           args={"reason": reason[:200]})
        await self._publish(hub_id, sign_command(body, self.signing_key))  # best effort: the hub stops at once
        return hub_ops.hub_row(hub, now)

    async def request_rotation(self, actor: str, hub_id: str) -> bool:
        """Ask a hub to rotate its key now (``rotate-key`` over MQTT); True when the command was published."""
        async with self.db.transaction() as tx:
            stores = sql_stores(tx)
            await admin.active_hub(stores, hub_id)
            await stores.audit.append(AuditEntry(at_ms=self.clock(), actor=actor, action="hub.rotate.request",
                                                 target=hub_id))
        body = CommandBody(id=uuid7(self.clock()), hub_id=hub_id, name="rotate-key", issued_ms=self.clock(),
                           expires_ms=self.clock() + 3_600_000)
        return await self._publish(hub_id, sign_command(body, self.signing_key))

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

    async def remove_device(self, actor: str, hub_id: str, device_id: str) -> tuple[int, bool]:
        """Unregister a device; returns the new version and whether it was pushed."""
        async with self.db.transaction() as tx:
            version = await admin.remove_device(sql_stores(tx), actor=actor, now_ms=self.clock(), hub_id=hub_id,
                                                device_id=device_id)
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
            async with aiomqtt.Client(host, port, identifier=f"mchub-cloud-fleet-{os.getpid()}-{uuid7()[-8:]}") as c:
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
        return await asyncio.to_thread(_replace_and_reload, self.broker_passwords, text, self.broker_reload)

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


def _replace_and_reload(path: Path, text: str, reload: tuple[str, ...]) -> bool:
    tmp = path.with_name(path.name + ".tmp")
    try:
        old = path.stat() if path.exists() else None
        tmp.write_text(text, encoding="utf-8")
        os.chmod(tmp, old.st_mode & 0o777 if old else 0o644)
        if old is not None and (old.st_uid, old.st_gid) != (os.getuid(), os.getgid()):
            os.chown(tmp, old.st_uid, old.st_gid)
        os.replace(tmp, path)
    except OSError as exc:
        log.error("cannot write the MQTT password file %s: %s", path, exc)
        return False
    if not reload:
        return True
    try:
        subprocess.run(list(reload), check=True, timeout=30, capture_output=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("MQTT broker reload %s failed: %s; revoked hubs keep their MQTT login until it works",
                  " ".join(reload), exc)
        return False
    return True


def token_info(record: TokenRecord) -> dict[str, Any]:
    """A token as listed: everything but the digest."""
    return {"token_id": record.token_id, "site_id": record.site_id, "hub_serial": record.hub_serial,
            "created_ms": record.created_ms, "expires_ms": record.expires_ms, "created_by": record.created_by,
            "used_ms": record.used_ms, "used_by_hub": record.used_by_hub}


async def config_version(db: Database, hub_id: str) -> int:
    """The hub's configuration version (for the ``X-Mchub-Config-Version`` batch answer header)."""
    return await sql_stores(db).devices.config_version(hub_id)

