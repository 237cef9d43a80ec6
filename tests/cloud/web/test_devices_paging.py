"""The devices page's list by key (cloud.web.admin_ops.devices) and the station rename, on SQLite and
PostgreSQL: every device exactly once walking forward or back, the counts of the whole list on every page,
a rename pushed into the hub's configuration, a clash refused by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloud.errors import CloudError
from cloud.fleet.stores import sql_stores
from cloud.web import admin_ops
from tests.cloud.support import make_cloud
from tests.cloud.web.support import WEB, running, seed


@pytest.fixture(params=["sqlite", "postgres"])
async def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    url = f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}" if request.param == "sqlite" \
        else str(request.getfixturevalue("pg_dsn"))
    cfg, keys = make_cloud(tmp_path / "cloud", url, extra_toml=WEB)
    async with running(cfg) as c:
        await seed(c, keys)
        async with c.state.db.transaction() as tx:
            await tx.execute("INSERT INTO stations (hub_id, station_id, name, first_seen_ms) VALUES ('H2', '1', "
                             "'一诊室', 1), ('H2', '2', '二诊室', 1)")
            await tx.executemany("INSERT INTO device_inventory (hub_id, device_id, station, kind, transport, address) "
                                 "VALUES ($1, $2, $3, 'ble-bp', 'ble', 'AA:BB:CC:DD:EE:FF')",
                                 [(hub, f"d{i:03d}", 1 + i % 2) for hub in ("H1", "H2") for i in range(61)])
            await tx.executemany("INSERT INTO devices (hub_id, device_id, station_id, first_seen_ms) "
                                 "VALUES ('H2', $1, '1', 5)", [(f"d{i:03d}",) for i in range(0, 61, 3)]
                                 + [("zz-local",)])
        yield c


async def _page(c: Any, **kw: Any) -> admin_ops.DevicePage:
    async with c.state.db.transaction() as tx:
        return await admin_ops.devices(tx, **kw)


async def test_every_device_once_forward_and_back_with_the_counts_of_all(cloud: Any) -> None:
    first = await _page(cloud)
    everything = [(r["hub_id"], r["device_id"]) for r in first.rows]
    assert len(first.rows) == 50 and first.prev_key is None and first.next_key == everything[-1]
    page = first
    while page.next_key is not None:
        page = await _page(cloud, after=page.next_key)
        assert page.counts == first.counts and page.total == first.total
        everything += [(r["hub_id"], r["device_id"]) for r in page.rows]
    assert everything == sorted(set(everything)) and len(everything) == first.total
    assert first.counts["reporting"] == 21 and first.counts["not_connected"] == 101  # H2 heard from 21 of its 61
    assert ("H2", "zz-local") in everything  # reported by the hub, not in the inventory
    back: list[tuple[str, str]] = [(r["hub_id"], r["device_id"]) for r in page.rows]
    while page.prev_key is not None:
        page = await _page(cloud, before=page.prev_key)
        assert len(page.rows) == 50
        back = [(r["hub_id"], r["device_id"]) for r in page.rows] + back
    assert back == everything
    assert page.rows[0]["hub_id"] == "H1" and (await _page(cloud, before=everything[50])).rows == first.rows


async def test_a_station_is_renamed_into_the_hubs_configuration_and_a_clash_is_refused(cloud: Any) -> None:
    fleet = cloud.app.state.fleet
    stores = sql_stores(cloud.state.db)
    version = await stores.devices.config_version("H2")
    await admin_ops.rename_station(fleet, "H2", "1", "  产科 一诊室 ", actor="web:root", now=10)
    assert await stores.devices.station_names("H2") == {1: "产科 一诊室", 2: "二诊室"}
    assert await stores.devices.config_version("H2") == version + 1
    with pytest.raises(admin_ops.DeviceRefused) as clash:
        await admin_ops.rename_station(fleet, "H2", "2", "产科 一诊室", actor="web:root", now=11)
    assert clash.value.reason == "station_name_taken" and clash.value.params == {
        "name": "产科 一诊室", "hub": "H2", "other": "1"}
    for hub, station, name, reason in (("H2", "2", "", "station_name"), ("H9", "1", "x", "unknown_hub"),
                                       ("H2", "s1", "x", "station_local")):
        with pytest.raises(CloudError) as refused:
            await admin_ops.rename_station(fleet, hub, station, name, actor="web:root", now=12)
        assert getattr(refused.value, "reason", "") == reason
    rows = await cloud.sql("SELECT detail FROM audit_log WHERE action = 'station.rename'")
    assert len(rows) == 1 and "一诊室" in rows[0]["detail"]


async def test_two_admins_giving_two_stations_one_name_at_once_get_one_rename_and_one_clear_refusal(cloud: Any) -> None:
    """On PostgreSQL both transactions may pass the name check before either writes; the unique index
    stops the second, and it is answered as a clash, never as a server error."""
    import asyncio

    fleet = cloud.app.state.fleet
    for attempt in range(5):
        name = f"同名诊室{attempt}"
        outcomes = await asyncio.gather(
            admin_ops.rename_station(fleet, "H2", "1", name, actor="web:a", now=20 + attempt),
            admin_ops.rename_station(fleet, "H2", "2", name, actor="web:b", now=20 + attempt),
            return_exceptions=True)
        refused = [o for o in outcomes if isinstance(o, BaseException)]
        assert len(refused) == 1, outcomes
        assert isinstance(refused[0], admin_ops.DeviceRefused) and refused[0].reason == "station_name_taken"
        await admin_ops.rename_station(fleet, "H2", "1", "一诊室", actor="web:a", now=30)
        await admin_ops.rename_station(fleet, "H2", "2", "二诊室", actor="web:a", now=30)
