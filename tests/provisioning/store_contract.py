"""Contract tests for implementations of the provisioning store protocols (provisioning/stores.py).

Reuse them for the cloud's PostgreSQL stores by subclassing and providing a ``stores``
fixture::

    class TestPostgresStores(StoreContract):
        @pytest.fixture
        async def stores(self, pg_dsn: str) -> Stores:
            return await open_pg_stores(pg_dsn)

``tests/provisioning/test_memory_stores.py`` runs them against the in-memory stores.
"""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from provisioning.errors import Conflict, NotFound
from provisioning.stores import AuditEntry, DeviceRecord, HubKey, HubRecord, SiteRecord, Stores, TokenRecord

NOW = 1_750_000_000_000


def _token(token_id: str = "AB12", site: str = "s1", created: int = NOW) -> TokenRecord:
    return TokenRecord(token_id=token_id, digest=bytes(32), site_id=site, created_ms=created, expires_ms=created + 1000)


def _hub(hub_id: str = "s1-h01") -> HubRecord:
    key = HubKey(key_id="00" * 8, public_raw=bytes(32), cert_pem="PEM", cert_serial="ab", not_after_ms=NOW + 1,
                 added_ms=NOW)
    return HubRecord(hub_id=hub_id, site_id="s1", serial="PI-1", enrolled_ms=NOW, keys=(key,),
                     mqtt_password_hash="$7$101$x$y")


def _device(device_id: str, hub_id: str = "s1-h01", station: int = 1) -> DeviceRecord:
    return DeviceRecord(device_id=device_id, hub_id=hub_id, station=station, kind="ble-bp", transport="ble",
                        address="AA:BB:CC:DD:EE:FF", options={"interval_s": 5, "fast": True})


async def _sites(stores: Stores, *site_ids: str) -> None:
    """Sites the rows below refer to (a database store may enforce the reference)."""
    for site_id in site_ids:
        await stores.sites.add(SiteRecord(site_id=site_id, name=site_id, created_ms=NOW))


class StoreContract:
    """Every test needs a fixture ``stores`` returning an empty :class:`Stores`."""

    async def test_sites_round_trip_and_conflict(self, stores: Stores) -> None:
        site = SiteRecord(site_id="s1", name="东城社区卫生服务中心", created_ms=NOW)
        await stores.sites.add(site)
        assert await stores.sites.get("s1") == site
        assert await stores.sites.get("nope") is None
        with pytest.raises(Conflict):
            await stores.sites.add(site)
        await stores.sites.add(SiteRecord(site_id="a0", name="x", created_ms=NOW))
        assert [s.site_id for s in await stores.sites.list()] == ["a0", "s1"]

    async def test_tokens_mark_used_once_even_when_racing(self, stores: Stores) -> None:
        await _sites(stores, "s1")
        await stores.tokens.add(_token())
        with pytest.raises(Conflict):
            await stores.tokens.add(_token())
        wins = await asyncio.gather(*(stores.tokens.mark_used("AB12", f"s1-h0{i}", f"key{i}", NOW) for i in range(5)))
        assert sorted(wins) == [False, False, False, False, True]
        used = await stores.tokens.get("AB12")
        assert used is not None and used.used_ms == NOW and used.digest == bytes(32)
        assert used.used_by_hub == f"s1-h0{wins.index(True)}" and used.used_key == f"key{wins.index(True)}"
        assert await stores.tokens.mark_used("ZZZZ", "h", "k", NOW) is False

    async def test_tokens_list_newest_first_by_site(self, stores: Stores) -> None:
        await _sites(stores, "s1", "s2")
        await stores.tokens.add(_token("AAAA", created=NOW))
        await stores.tokens.add(_token("BBBB", created=NOW + 5))
        await stores.tokens.add(_token("CCCC", site="s2"))
        assert [t.token_id for t in await stores.tokens.list("s1")] == ["BBBB", "AAAA"]
        assert len(await stores.tokens.list()) == 3

    async def test_hubs_create_save_list(self, stores: Stores) -> None:
        await _sites(stores, "s1")
        hub = _hub()
        await stores.hubs.create(hub)
        with pytest.raises(Conflict):
            await stores.hubs.create(hub)
        assert await stores.hubs.get("s1-h01") == hub
        revoked = msgspec.structs.replace(hub, status="revoked", revoked_ms=NOW, mqtt_password_hash=None,
                                          keys=(*hub.keys, msgspec.structs.replace(hub.keys[0], key_id="11" * 8)))
        await stores.hubs.save(revoked)
        assert await stores.hubs.get("s1-h01") == revoked
        await stores.hubs.create(_hub("s1-h00"))
        assert [h.hub_id for h in await stores.hubs.list()] == ["s1-h00", "s1-h01"]

    async def test_devices_bump_the_version_per_hub(self, stores: Stores) -> None:
        assert await stores.devices.config_version("s1-h01") == 0
        assert await stores.devices.add(_device("s2-ble-bp", station=2)) == 1
        assert await stores.devices.add(_device("s1-ble-bp")) == 2
        assert await stores.devices.add(_device("s1-ble-bp", hub_id="s1-h02")) == 1  # same id, other hub
        with pytest.raises(Conflict):
            await stores.devices.add(_device("s1-ble-bp"))
        listed = await stores.devices.list("s1-h01")
        assert [d.device_id for d in listed] == ["s1-ble-bp", "s2-ble-bp"] and listed[0].options["fast"] is True
        assert await stores.devices.remove("s1-h01", "s1-ble-bp") == 3
        with pytest.raises(NotFound):
            await stores.devices.remove("s1-h01", "s1-ble-bp")
        assert await stores.devices.config_version("s1-h01") == 3

    async def test_audit_is_append_only_in_order(self, stores: Stores) -> None:
        for i in range(5):
            await stores.audit.append(AuditEntry(at_ms=NOW + i, actor="alice", action="hub.revoke",
                                                 target=f"h{i % 2}", detail={"reason": str(i)}))
        assert [e.detail["reason"] for e in await stores.audit.list()] == ["0", "1", "2", "3", "4"]
        assert [e.at_ms for e in await stores.audit.list("h1")] == [NOW + 1, NOW + 3]
        assert [e.at_ms for e in await stores.audit.list(limit=2)] == [NOW + 3, NOW + 4]
