"""The cloud's provisioning stores pass the same contract as the in-memory ones, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.fleet.registry import lookup_signer
from cloud.fleet.stores import sql_stores
from protocol.keys import key_id
from provisioning.errors import Conflict
from provisioning.stores import HubKey, HubRecord, SiteRecord, Stores
from tests.provisioning.store_contract import NOW, StoreContract


@pytest.fixture(params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else str(request.getfixturevalue("pg_dsn"))
    db = await Database.connect(url)
    await migrate(db)
    yield db
    await db.close()


class TestCloudStores(StoreContract):
    @pytest.fixture
    def stores(self, database: Database) -> Stores:
        return sql_stores(database)


async def test_one_transaction_commits_all_or_nothing(database: Database) -> None:
    with pytest.raises(Conflict):
        async with database.transaction() as tx:
            stores = sql_stores(tx)
            await stores.sites.add(SiteRecord(site_id="s1", name="a", created_ms=NOW))
            await stores.sites.add(SiteRecord(site_id="s1", name="b", created_ms=NOW))  # duplicate: tx rolls back
    assert await sql_stores(database).sites.list() == []


async def test_hub_keys_are_the_rows_ingest_verifies_with(database: Database) -> None:
    stores = sql_stores(database)
    await stores.sites.add(SiteRecord(site_id="s1", name="a", created_ms=NOW))
    raw = bytes.fromhex("3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29")  # RFC 8032 test key 1
    kid = key_id(raw)
    key = HubKey(key_id=kid.hex(), public_raw=raw, cert_pem="PEM", cert_serial="ab", not_after_ms=NOW + 1000,
                 added_ms=NOW)
    hub = HubRecord(hub_id="s1-h01", site_id="s1", serial="PI-1", enrolled_ms=NOW, keys=(key,))
    await stores.hubs.create(hub)
    assert (await lookup_signer(database, "s1-h01", kid, NOW)).public_key is not None
    assert (await lookup_signer(database, "s1-h01", kid, NOW + 1001)).public_key is None  # certificate expired
    retired = HubRecord(hub_id="s1-h01", site_id="s1", serial="PI-1", enrolled_ms=NOW,
                        keys=(msgspec.structs.replace(key, retire_ms=NOW + 10),))
    await stores.hubs.save(retired)
    assert (await lookup_signer(database, "s1-h01", kid, NOW + 10)).public_key is None  # rotation overlap over
    await stores.hubs.save(HubRecord(hub_id="s1-h01", site_id="s1", serial="PI-1", enrolled_ms=NOW, keys=(key,),
                                     status="revoked", revoked_ms=NOW))
    assert (await lookup_signer(database, "s1-h01", kid, NOW)).hub_status == "revoked"
