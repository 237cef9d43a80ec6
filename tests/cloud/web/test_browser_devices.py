"""The devices page end to end in headless Chromium against a real ``mchub cloud serve`` process:
an admin pages through more than 50 devices (by key, 50 a page, with the count) and renames a
station of a hub; a name another station of that hub has is refused with a message in the
reader's language. The rename is audited and bumps the hub's configuration version (the hub
gets the name in its next configuration, as station names always reach it).

Screenshots: docs/screenshots/cloud-devices-pages-{zh-CN,en}.png (page 2) and
cloud-devices-rename-zh-CN.png (the rename disclosure open), 1280x800.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.cloud.fleet_support import ProvCloud, make_prov_cloud
from tests.cloud.support import worker_process
from tests.cloud.web.support import PASSWORD, WEB, code, running, seed
from tests.support.browser import browser, needs_chromium, new_page, screenshot  # noqa: F401

pytestmark = [needs_chromium, pytest.mark.slow]
DEVICES = 60  #: in the cloud inventory of hub H1: 30 on station 1 (一诊室), 30 on station 2 (二诊室)


async def _prepare(prov: ProvCloud) -> str:
    async with running(prov.cfg) as cloud:
        await seed(cloud, prov.keys)
        async with cloud.state.db.transaction() as tx:
            for n, name in ((1, "一诊室"), (2, "二诊室")):
                await tx.execute("INSERT INTO stations (hub_id, station_id, name, first_seen_ms) "
                                 "VALUES ($1, $2, $3, 1)", "H1", str(n), name)
            await tx.executemany(
                "INSERT INTO device_inventory (hub_id, device_id, station, kind, transport, address) "
                "VALUES ('H1', $1, $2, 'ble-bp', 'ble', $3)",
                [(f"dev-{i:03d}", 1 if i <= DEVICES // 2 else 2, f"AA:BB:CC:DD:{i // 256:02X}:{i % 256:02X}")
                 for i in range(1, DEVICES + 1)])
        return await cloud.user("root", "admin")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ProvCloud, str]]:
    tmp = tmp_path_factory.mktemp("devices")
    prov = make_prov_cloud(tmp / "cloud", f"sqlite:///{tmp / 'cloud' / 'cloud.db'}", WEB)
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API may already run a loop in this thread
        secret = pool.submit(asyncio.run, _prepare(prov)).result()
    port = prov.cfg.server.port
    with worker_process(prov.cfg, port, tmp / "cloud.log"):
        yield f"http://127.0.0.1:{port}", prov, secret


def _sql(prov: ProvCloud, query: str) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(prov.cfg.database.url.removeprefix("sqlite:///"))
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def _ids(page: Any) -> list[str]:
    return [str(i) for i in page.locator("tr.device").evaluate_all("rows => rows.map(r => r.id)")]


def test_admin_pages_through_the_devices_and_renames_a_station(browser: Any, live: Any) -> None:  # noqa: F811
    url, prov, secret = live
    page = new_page(browser, "zh-CN")
    page.goto(f"{url}/ui/login")
    page.fill("input[name=user]", "root")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=totp]", code(secret))
    page.click("button[type=submit].primary")
    page.wait_for_url("**/ui/**")

    # paging: 50 a page by key, a count of all, next and previous
    page.goto(f"{url}/ui/admin/devices?lang=zh-CN")
    first = _ids(page)
    count = page.inner_text("nav.pager .count")
    total = int(re.search(r"共 (\d+) 台设备", count).group(1))  # type: ignore[union-attr]
    assert len(first) == 50 and "本页 50 台" in count and total >= DEVICES + 1  # + what H1 reported itself
    assert page.locator("nav.pager a[rel=prev]").count() == 0
    page.click("nav.pager a[rel=next]")
    page.wait_for_url("**after_hub=*")
    second = _ids(page)
    assert len(second) == total - 50 and not set(first) & set(second)
    assert sorted(first + second) == sorted({*first, *second})
    assert page.locator("nav.pager a[rel=next]").count() == 0
    for lang in ("en", "zh-CN"):
        page.goto(f"{page.url.split('&lang=')[0]}&lang={lang}")
        screenshot(page, f"cloud-devices-pages-{lang}")
    page.click("nav.pager a[rel=prev]")
    page.wait_for_url("**before_hub=*")
    assert _ids(page) == first

    # rename station 1 of H1 from a row of page 1
    page.goto(f"{url}/ui/admin/devices?lang=zh-CN")
    version = _sql(prov, "SELECT version FROM hub_config_versions WHERE hub_id = 'H1'")
    row = page.locator("#device-H1-dev-001")
    assert "一诊室" in row.locator("td.station").inner_text()
    row.locator("details.rename summary").click()
    screenshot(page, "cloud-devices-rename-zh-CN")
    row.locator("details.rename input[name=name]").fill(" 产科一诊室 ")
    row.locator("details.rename button").click()
    page.wait_for_url("**ok=*")
    assert page.locator(".flash.ok").is_visible()
    assert "产科一诊室" in page.locator("#device-H1-dev-001 td.station").inner_text()
    assert _sql(prov, "SELECT name FROM stations WHERE hub_id = 'H1' AND station_id = '1'") == [("产科一诊室",)]
    assert _sql(prov, "SELECT actor, action, detail FROM audit_log WHERE action = 'station.rename'") == [
        ("web:root", "station.rename", '{"station":"1","old":"一诊室","name":"产科一诊室"}')]
    assert _sql(prov, "SELECT version FROM hub_config_versions WHERE hub_id = 'H1'")[0][0] == \
        (version[0][0] if version else 0) + 1  # the hub's next configuration carries the new name

    # the same name for station 2 of H1: refused, in the reader's language, nothing changed
    for lang, message in (("zh-CN", "网关 H1 已有名为“产科一诊室”的测量台（测量台 1）：请换一个名称。"),
                          ("en", "Hub H1 already has a station called “产科一诊室” (station 1): choose another name.")):
        page.goto(f"{url}/ui/admin/devices?lang={lang}")
        row = page.locator(f"#device-H1-dev-{DEVICES:03d}")
        if not row.count():
            page.click("nav.pager a[rel=next]")
            page.wait_for_url("**after_hub=*")
        row.locator("details.rename summary").click()
        row.locator("details.rename input[name=name]").fill("产科一诊室")
        row.locator("details.rename button").click()
        page.wait_for_url("**error=*")
        assert page.inner_text(".flash.error p") == message
    assert _sql(prov, "SELECT name FROM stations WHERE hub_id = 'H1' AND station_id = '2'") == [("二诊室",)]
    assert len(_sql(prov, "SELECT id FROM audit_log WHERE action = 'station.rename'")) == 1
    page.context.close()
