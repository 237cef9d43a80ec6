"""The admin devices page's list on a city-sized fleet: one page by key vs the whole merged list.

A throwaway PostgreSQL holds 400 hubs with 20,000 devices in the cloud inventory (half heard
from, a tenth reported down) and 4,000 devices the hubs reported that the inventory lacks.
Measured in the same run, round by round: :func:`cloud.web.admin_ops.devices` for the first
page and for a page 15,000 devices deep (by key), and as the baseline the list as the page
built it before paging (every device merged and sorted, :func:`_whole_list`, the previous
code). Reported: min/median/max milliseconds and the median per-round ratio to the baseline.

    .venv/bin/python bench/bench_devices_page.py
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import figure, machine, show
from cloud.config import CloudConfig
from cloud.web import admin_ops
from tests.cloud.support import make_cloud
from tests.cloud.web.support import WEB, running
from tests.support.services import PostgresServer

HUBS, DEVICES, REPORTED, ROUNDS = 400, 20_000, 4_000, 15


async def _whole_list(tx: Any) -> list[dict[str, Any]]:
    """The devices page's list before paging: every device of both sides, merged and sorted (the baseline)."""
    hubs_ = {r["hub_id"]: r for r in await tx.fetch("SELECT hub_id, status, telemetry, devices_down FROM hubs")}
    names = {(r["hub_id"], r["station_id"]): r["name"] for r in await tx.fetch(
        "SELECT hub_id, station_id, name FROM stations")}
    seen = {(r["hub_id"], r["device_id"]): r for r in await tx.fetch(
        "SELECT hub_id, device_id, station_id, first_seen_ms FROM devices")}
    down = {(h, d) for h, r in hubs_.items() for d in (r["devices_down"] or "").split(",") if d}
    rows: list[dict[str, Any]] = []
    configured: set[tuple[str, str]] = set()
    for r in await tx.fetch("SELECT hub_id, station, device_id, kind, transport, address, port, label "
                            "FROM device_inventory"):
        key = (r["hub_id"], r["device_id"])
        configured.add(key)
        rows.append({**dict(r), "station_id": str(r["station"]),
                     "state": "reporting" if key in seen and key not in down else "not_connected"})
    for key in sorted(set(seen) - configured):
        rows.append({"hub_id": key[0], "device_id": key[1], "station_id": seen[key]["station_id"],
                     "state": "not_configured"})
    for row in rows:
        row["station_name"] = names.get((row["hub_id"], row["station_id"]), "")
    return sorted(rows, key=lambda x: (x["hub_id"], x["station_id"], x["device_id"]))


async def _fill(cloud: Any) -> None:
    per_hub = DEVICES // HUBS
    async with cloud.state.db.transaction() as tx:
        con = tx.raw
        await con.execute("INSERT INTO sites (site_id, name, created_ms) VALUES ('s1', 'site', 1)")
        await con.copy_records_to_table("hubs", records=[(f"s1-h{h:04d}", "s1", 1, ",".join(
            f"d{i:03d}" for i in range(0, per_hub, 10))) for h in range(HUBS)],
            columns=["hub_id", "site_id", "created_ms", "devices_down"])
        await con.copy_records_to_table("stations", records=[(f"s1-h{h:04d}", str(s), f"诊室{s}", 1)
                                                             for h in range(HUBS) for s in (1, 2)],
                                        columns=["hub_id", "station_id", "name", "first_seen_ms"])
        await con.copy_records_to_table("device_inventory", records=[
            (f"s1-h{h:04d}", f"d{i:03d}", 1 + i % 2, "ble-bp", "ble", "AA:BB:CC:DD:EE:FF")
            for h in range(HUBS) for i in range(per_hub)],
            columns=["hub_id", "device_id", "station", "kind", "transport", "address"])
        await con.copy_records_to_table("devices", records=[
            (f"s1-h{h:04d}", f"d{i:03d}", "1", 5) for h in range(HUBS) for i in range(0, per_hub, 2)]
            + [(f"s1-h{h:04d}", f"local-{i:02d}", "ST1", 5) for h in range(HUBS) for i in range(REPORTED // HUBS)],
            columns=["hub_id", "device_id", "station_id", "first_seen_ms"])
        await con.execute("ANALYZE")


async def _ms(fn: Any) -> float:
    start = time.perf_counter()
    await fn()
    return (time.perf_counter() - start) * 1000


async def measure(cfg: CloudConfig) -> dict[str, object]:
    async with running(cfg) as cloud:
        await _fill(cloud)
        db = cloud.state.db

        async def page(**kw: Any) -> admin_ops.DevicePage:
            async with db.transaction() as tx:
                return await admin_ops.devices(tx, **kw)

        async def whole() -> list[dict[str, Any]]:
            async with db.transaction() as tx:
                return await _whole_list(tx)

        deep = ("s1-h0300", "d000")  # 15,000 inventory devices before it
        assert len((await page()).rows) == 50 and len((await page(after=deep)).rows) == 50
        first, deep_page, base = [], [], []
        for _ in range(ROUNDS):
            base.append(await _ms(whole))
            first.append(await _ms(page))
            deep_page.append(await _ms(lambda: page(after=deep)))
        total = (await page()).total
    return {"devices listed": total,
            "first page by key (ms)": figure(first, "ms", base),
            "page 15,000 deep by key (ms)": figure(deep_page, "ms", base),
            "whole merged list, before paging (ms)": figure(base, "ms")}


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="mchub-bench-") as tmp:
        base = Path(tmp)
        base.chmod(0o755)  # the PostgreSQL service user must reach its data directory
        pg = PostgresServer(base / "pg").start()
        try:
            cfg, _ = make_cloud(base / "cloud", pg.create_database("devices"), extra_toml=WEB)
            out = asyncio.run(measure(cfg))
        finally:
            pg.stop()
    print(f"devices page, {HUBS} hubs, PostgreSQL ({machine()}), load average {os.getloadavg()[0]:.1f}")
    show(out)


if __name__ == "__main__":
    main()
