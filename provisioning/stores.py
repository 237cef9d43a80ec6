"""Records and the storage interfaces the provisioning logic runs against.

``provisioning`` does no I/O of its own: the cloud implements these small async
:class:`~typing.Protocol` classes with its database (one table each) and passes them in
a :class:`Stores`. The tests implement them in memory (``tests/provisioning/memory.py``).

Contract for implementers:

* Call :func:`~provisioning.enrollment.process_enrollment`,
  :func:`~provisioning.rotation.process_rotation` and
  :func:`~provisioning.hubs.revoke_hub` inside ONE database transaction, so a crash
  leaves either all of their writes or none.
* :meth:`TokenStore.mark_used` must be a conditional update (``UPDATE ... WHERE token_id
  = $1 AND used_ms IS NULL``) that returns whether it changed the row: two cloud workers
  racing with one token must not both win.
* Records are immutable values (msgspec structs); ``save`` replaces the stored row.
* ``tests/provisioning/store_contract.py`` holds contract tests any implementation can run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import msgspec

HubStatus = Literal["active", "revoked"]


class SiteRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A clinic (one or more hubs)."""

    site_id: str
    name: str
    created_ms: int


class TokenRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An enrollment token as stored: the digest, never the token text."""

    token_id: str
    digest: bytes
    site_id: str
    hub_serial: str | None = None
    created_ms: int
    expires_ms: int
    created_by: str = ""
    used_ms: int | None = None
    used_by_hub: str | None = None
    used_key: str | None = None  #: fingerprint (hex SHA-256 of the raw key) that used it


class HubKey(msgspec.Struct, frozen=True, kw_only=True):
    """One Ed25519 key of a hub and the certificate issued for it."""

    key_id: str  #: hex of protocol.keys.key_id(raw): the id batch headers carry
    public_raw: bytes
    cert_pem: str
    cert_serial: str  #: hex
    not_after_ms: int
    added_ms: int
    retire_ms: int | None = None  #: after this instant the key no longer verifies (rotation overlap end)


class HubRecord(msgspec.Struct, frozen=True, kw_only=True):
    """An enrolled hub."""

    hub_id: str
    site_id: str
    serial: str
    status: HubStatus = "active"
    enrolled_ms: int
    keys: tuple[HubKey, ...] = ()
    mqtt_password_hash: str | None = None  #: mosquitto ``$7$`` PBKDF2 hash; None after revocation
    last_seen_ms: int | None = None
    revoked_ms: int | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None
    enroll_token: str | None = None  #: id of the token that enrolled it


class DeviceRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A measurement device registered to a hub's station (validated by provisioning.inventory)."""

    device_id: str  #: unique on its hub; readings carry it
    hub_id: str
    station: int
    kind: str  #: driver kind, e.g. "ble-bp"
    transport: str  #: ble | serial | tcp | modbus-rtu | modbus-tcp
    address: str  #: BLE MAC, serial device path, or host
    port: int | None = None  #: TCP port, or Modbus unit id for modbus-rtu
    dialect: str | None = None  #: vendor variant of the kind's protocol
    options: dict[str, str | int | float | bool] = {}
    label: str = ""  #: shown on the status page, e.g. "诊室2 血压计"


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One audited action. ``detail`` holds ids and reasons, never secrets or patient data."""

    at_ms: int
    actor: str  #: admin username, "hub:<id>" or "system"
    action: str  #: e.g. "token.create", "hub.enroll", "hub.rotate", "hub.revoke"
    target: str
    detail: dict[str, str] = {}


class SiteStore(Protocol):
    """Sites by id."""

    async def add(self, site: SiteRecord) -> None:
        """Insert; raise provisioning.errors.Conflict if the id exists."""
        ...

    async def get(self, site_id: str) -> SiteRecord | None:
        """The site, or None."""
        ...

    async def list(self) -> list[SiteRecord]:
        """Every site, by id."""
        ...


class TokenStore(Protocol):
    """Enrollment tokens by id."""

    async def add(self, record: TokenRecord) -> None:
        """Insert; raise provisioning.errors.Conflict if the id exists (the caller mints another)."""
        ...

    async def get(self, token_id: str) -> TokenRecord | None:
        """The token, or None."""
        ...

    async def mark_used(self, token_id: str, hub_id: str, key_fingerprint: str, at_ms: int) -> bool:
        """Atomically record first use; False when the token was already used."""
        ...

    async def list(self, site_id: str | None = None) -> list[TokenRecord]:
        """Tokens, optionally of one site, newest first."""
        ...


class HubStore(Protocol):
    """Enrolled hubs by id."""

    async def get(self, hub_id: str) -> HubRecord | None:
        """The hub, or None."""
        ...

    async def create(self, hub: HubRecord) -> None:
        """Insert; raise provisioning.errors.Conflict if the id exists."""
        ...

    async def save(self, hub: HubRecord) -> None:
        """Replace the stored hub."""
        ...

    async def list(self) -> list[HubRecord]:
        """Every hub, by id."""
        ...


class DeviceStore(Protocol):
    """Devices and the per-hub configuration version."""

    async def add(self, device: DeviceRecord) -> int:
        """Insert and bump the hub's configuration version; return the new version.

        Raise provisioning.errors.Conflict if the hub already has a device with this id.
        """
        ...

    async def remove(self, hub_id: str, device_id: str) -> int:
        """Delete and bump the hub's configuration version; return the new version (NotFound if absent)."""
        ...

    async def list(self, hub_id: str) -> list[DeviceRecord]:
        """The hub's devices, by station then id."""
        ...

    async def config_version(self, hub_id: str) -> int:
        """The hub's configuration version (0 before any device was added)."""
        ...

    async def station_names(self, hub_id: str) -> dict[int, str]:
        """The names admins gave the hub's stations (station number -> e.g. "一诊室"); unnamed ones are absent."""
        ...


class AuditLog(Protocol):
    """Append-only audit trail."""

    async def append(self, entry: AuditEntry) -> None:
        """Record one entry durably (in the caller's transaction)."""
        ...

    async def list(self, target: str | None = None, limit: int = 200) -> list[AuditEntry]:
        """The most recent ``limit`` entries (optionally for one target), listed oldest first."""
        ...


@dataclass(frozen=True)
class Stores:
    """Everything the provisioning logic reads and writes, handed in by the caller."""

    sites: SiteStore
    tokens: TokenStore
    hubs: HubStore
    devices: DeviceStore
    audit: AuditLog
