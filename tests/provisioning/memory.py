"""In-memory implementations of the provisioning store protocols — for tests only.

The cloud implements the same protocols with PostgreSQL; these follow the contract in
``provisioning/stores.py`` (conditional ``mark_used``, Conflict on duplicate ids).
"""

from __future__ import annotations

import msgspec

from provisioning.errors import Conflict, NotFound
from provisioning.stores import AuditEntry, DeviceRecord, HubRecord, SiteRecord, Stores, TokenRecord


class MemorySites:
    def __init__(self) -> None:
        self.rows: dict[str, SiteRecord] = {}

    async def add(self, site: SiteRecord) -> None:
        if site.site_id in self.rows:
            raise Conflict(f"site {site.site_id} exists")
        self.rows[site.site_id] = site

    async def get(self, site_id: str) -> SiteRecord | None:
        return self.rows.get(site_id)

    async def list(self) -> list[SiteRecord]:
        return [self.rows[k] for k in sorted(self.rows)]


class MemoryTokens:
    def __init__(self) -> None:
        self.rows: dict[str, TokenRecord] = {}

    async def add(self, record: TokenRecord) -> None:
        if record.token_id in self.rows:
            raise Conflict(f"token {record.token_id} exists")
        self.rows[record.token_id] = record

    async def get(self, token_id: str) -> TokenRecord | None:
        return self.rows.get(token_id)

    async def mark_used(self, token_id: str, hub_id: str, key_fingerprint: str, at_ms: int) -> bool:
        row = self.rows.get(token_id)
        if row is None or row.used_ms is not None:
            return False
        self.rows[token_id] = msgspec.structs.replace(row, used_ms=at_ms, used_by_hub=hub_id, used_key=key_fingerprint)
        return True

    async def list(self, site_id: str | None = None) -> list[TokenRecord]:
        rows = [r for r in self.rows.values() if site_id is None or r.site_id == site_id]
        return sorted(rows, key=lambda r: -r.created_ms)


class MemoryHubs:
    def __init__(self) -> None:
        self.rows: dict[str, HubRecord] = {}

    async def get(self, hub_id: str) -> HubRecord | None:
        return self.rows.get(hub_id)

    async def create(self, hub: HubRecord) -> None:
        if hub.hub_id in self.rows:
            raise Conflict(f"hub {hub.hub_id} exists")
        self.rows[hub.hub_id] = hub

    async def save(self, hub: HubRecord) -> None:
        self.rows[hub.hub_id] = hub

    async def list(self) -> list[HubRecord]:
        return [self.rows[k] for k in sorted(self.rows)]


class MemoryDevices:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], DeviceRecord] = {}
        self.versions: dict[str, int] = {}
        self.names: dict[tuple[str, int], str] = {}

    async def add(self, device: DeviceRecord) -> int:
        if (device.hub_id, device.device_id) in self.rows:
            raise Conflict(f"device {device.device_id} exists on {device.hub_id}")
        self.rows[(device.hub_id, device.device_id)] = device
        self.versions[device.hub_id] = self.versions.get(device.hub_id, 0) + 1
        return self.versions[device.hub_id]

    async def remove(self, hub_id: str, device_id: str) -> int:
        if self.rows.pop((hub_id, device_id), None) is None:
            raise NotFound(f"no device {device_id} on hub {hub_id}")
        self.versions[hub_id] = self.versions.get(hub_id, 0) + 1
        return self.versions[hub_id]

    async def list(self, hub_id: str) -> list[DeviceRecord]:
        return sorted((d for (h, _), d in self.rows.items() if h == hub_id), key=lambda d: (d.station, d.device_id))

    async def config_version(self, hub_id: str) -> int:
        return self.versions.get(hub_id, 0)

    async def station_names(self, hub_id: str) -> dict[int, str]:
        return {s: n for (h, s), n in self.names.items() if h == hub_id}


class MemoryAudit:
    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    async def append(self, entry: AuditEntry) -> None:
        self.entries.append(entry)

    async def list(self, target: str | None = None, limit: int = 200) -> list[AuditEntry]:
        rows = [e for e in self.entries if target is None or e.target == target]
        return rows[-limit:]

    def actions(self) -> list[str]:
        return [e.action for e in self.entries]


def memory_stores() -> Stores:
    """A fresh, empty set of stores."""
    return Stores(MemorySites(), MemoryTokens(), MemoryHubs(), MemoryDevices(), MemoryAudit())
