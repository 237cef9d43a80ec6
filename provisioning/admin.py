"""Admin operations behind ``mchub provision`` and the admin API: sites, tokens, devices.

Each function validates, writes through the :class:`~provisioning.stores.Stores` handed
in, and appends an audit entry naming the admin (``actor``). The cloud's HTTP handlers
call them after authenticating the admin and checking the role
(:func:`provisioning.auth.require`); see docs/admin-api.md. Hub listing and revocation
live in :mod:`provisioning.hubs`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from provisioning.errors import Conflict, HubRevoked, InventoryError, NotFound, RequestError, SiteIdError
from provisioning.inventory import check_unique_address, default_device_id, infer_transport, validate_device
from provisioning.stores import AuditEntry, DeviceRecord, HubRecord, SiteRecord, Stores, TokenRecord
from provisioning.tokens import DEFAULT_LIFETIME_MS, IssuedToken, new_record, new_token

#: The one rule for site ids, used by ``mchub provision site add``, the admin API and the admin web
#: form (whose ``pattern`` attribute is this text): lower case only, so an id is written one way.
SITE_ID_PATTERN = "[a-z0-9][a-z0-9_-]{0,39}"
_SITE_ID = re.compile(SITE_ID_PATTERN)


def check_site_id(site_id: str) -> str:
    """Return ``site_id`` if it follows :data:`SITE_ID_PATTERN`, else raise a bilingual :class:`RequestError`.

    Upper case is refused, not folded: hub ids, certificates and registers carry the id as typed,
    so ``S001`` and ``s001`` would otherwise name one site two ways. The message proposes the
    lower-case spelling when that one would do.
    """
    if _SITE_ID.fullmatch(site_id):
        return site_id
    lower = site_id.lower() if _SITE_ID.fullmatch(site_id.lower()) else ""
    hint = f"; 请改用 / use {lower!r}" if lower else ""
    raise SiteIdError(f"机构编号 {site_id!r} 须为 1-40 个小写字母、数字、_ 或 -，以字母或数字开头 / site id "
                      f"{site_id!r}: 1-40 of a-z 0-9 _ - (lower case), starting with a letter or digit{hint}",
                      site_id, lower)


async def add_site(stores: Stores, *, site_id: str, name: str, actor: str, now_ms: int) -> SiteRecord:
    """Register a clinic. ``site_id`` becomes the prefix of its hubs' ids (``<site>-h01``)."""
    check_site_id(site_id)
    if not name.strip() or len(name) > 128:
        raise RequestError("a site needs a name of 1-128 characters (e.g. 东城社区卫生服务中心)")
    site = SiteRecord(site_id=site_id, name=name.strip(), created_ms=now_ms)
    await stores.sites.add(site)
    await stores.audit.append(AuditEntry(at_ms=now_ms, actor=actor, action="site.add", target=site_id,
                                         detail={"name": site.name}))
    return site


@dataclass(frozen=True)
class CreatedToken:
    """The one and only time the token text exists outside the hub."""

    text: str
    record: TokenRecord


async def create_token(
    stores: Stores,
    *,
    site_id: str,
    actor: str,
    now_ms: int,
    lifetime_ms: int = DEFAULT_LIFETIME_MS,
    hub_serial: str | None = None,
) -> CreatedToken:
    """Mint a one-time enrollment token for a site; only its digest is stored."""
    if await stores.sites.get(site_id) is None:
        raise NotFound(f"no site {site_id!r}; add it first with `mchub provision site add {site_id} --name ...`")
    for _ in range(8):  # the 20-bit public id may collide; mint another
        issued: IssuedToken = new_token()
        record = new_record(issued, site_id=site_id, now_ms=now_ms, lifetime_ms=lifetime_ms,
                            hub_serial=hub_serial, created_by=actor)
        try:
            await stores.tokens.add(record)
        except Conflict:
            continue
        detail = {"site": site_id, "expires_ms": str(record.expires_ms)}
        if hub_serial:
            detail["hub_serial"] = hub_serial
        await stores.audit.append(AuditEntry(at_ms=now_ms, actor=actor, action="token.create",
                                             target=record.token_id, detail=detail))
        return CreatedToken(issued.text, record)
    raise Conflict("could not mint a token with a free id; try again")


async def active_hub(stores: Stores, hub_id: str) -> HubRecord:
    """The hub, which must exist and not be revoked."""
    hub = await stores.hubs.get(hub_id)
    if hub is None:
        raise NotFound(f"no hub {hub_id!r}; `mchub provision hub list` shows the enrolled hubs")
    if hub.status == "revoked":
        raise HubRevoked(f"hub {hub_id} is revoked")
    return hub


async def add_device(
    stores: Stores,
    *,
    actor: str,
    now_ms: int,
    hub_id: str,
    station: int,
    kind: str,
    address: str,
    transport: str | None = None,
    port: int | None = None,
    dialect: str | None = None,
    options: dict[str, str | int | float | bool] | None = None,
    label: str = "",
    device_id: str | None = None,
) -> tuple[DeviceRecord, int]:
    """Register a device on a hub's station; returns it and the hub's new configuration version."""
    await active_hub(stores, hub_id)
    transport = transport or infer_transport(kind)
    if transport is None:
        raise InventoryError(f"kind {kind!r} does not say its transport; add --transport (ble, serial, tcp, ...)")
    existing = await stores.devices.list(hub_id)
    device = validate_device(
        DeviceRecord(
            device_id=device_id or default_device_id(station, kind, existing), hub_id=hub_id, station=station,
            kind=kind, transport=transport, address=address, port=port, dialect=dialect,
            options=dict(options or {}), label=label,
        )
    )
    check_unique_address(device, existing)
    version = await stores.devices.add(device)
    await stores.audit.append(AuditEntry(
        at_ms=now_ms, actor=actor, action="device.add", target=hub_id,
        detail={"device": device.device_id, "station": str(station), "kind": kind, "version": str(version)},
    ))
    return device, version


async def remove_device(stores: Stores, *, actor: str, now_ms: int, hub_id: str, device_id: str,
                        reason: str = "") -> int:
    """Unregister a device (a ``reason`` goes to the audit log); returns the hub's new configuration version."""
    version = await stores.devices.remove(hub_id, device_id)
    detail = {"device": device_id, "version": str(version), **({"reason": reason} if reason else {})}
    await stores.audit.append(AuditEntry(at_ms=now_ms, actor=actor, action="device.remove", target=hub_id,
                                         detail=detail))
    return version
