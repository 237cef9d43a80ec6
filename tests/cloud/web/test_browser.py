"""The cloud pages end to end in headless Chromium against a real ``mchub cloud serve`` process.

An integration engineer signs in (password + TOTP), watches a number change live over
Server-Sent Events, replays a dead letter and looks a patient up (masked); an admin
mints an enrollment token that a real hub enrolls with, then revokes that hub. Every
page is saved in zh-CN and English under docs/screenshots/cloud-*.png (1280x800); the dashboard
and the work list by test_browser_worklist.py, with a day of traffic behind the charts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from cloud.mch import assembler
from cloud.mch.profiles import reference_profile
from provisioning import hubside
from provisioning.errors import ProvisioningError
from tests.cloud.fleet_support import ProvCloud, make_prov_cloud
from tests.cloud.mch.conftest import add_result, add_subject, add_visit
from tests.cloud.support import worker_process
from tests.cloud.web.support import NID, PASSWORD, WEB, code, running, seed
from tests.support.browser import browser, needs_chromium, new_page, screenshot  # noqa: F401

pytestmark = [needs_chromium, pytest.mark.slow]
LANGS = ("zh-CN", "en")


async def _prepare(prov: ProvCloud) -> dict[str, str]:
    async with running(prov.cfg) as cloud:
        await seed(cloud, prov.keys)
        db, day = cloud.state.db, 86_400_000
        t0 = int(dt.datetime(dt.date.today().year, dt.date.today().month, 1, 10).timestamp() * 1000)
        for i, birads in enumerate(("4A", "2", "3")):  # MCH screening cases for the registers
            who = await add_subject(db)
            await add_visit(db, who, f"mch-{i}", t0, [], site_id="S1")
            await add_result(db, who, "hl7", "hpv", "30167-1", "阴性", t0 + i * 1000)
            await add_result(db, who, "dicom", "birads", "BIRADS-US", birads, t0 + day + i * 1000)
        await assembler.sweep(db, assembler.Context(reference_profile()))
        return {"ops": await cloud.user("ops", "integration"), "root": await cloud.user("root", "admin")}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ProvCloud, dict[str, str]]]:
    """A seeded cloud with provisioning on, served by a real worker process."""
    tmp = tmp_path_factory.mktemp("browser")
    prov = make_prov_cloud(tmp / "cloud", f"sqlite:///{tmp / 'cloud' / 'cloud.db'}", WEB)
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API may already run a loop in this thread
        secrets = pool.submit(asyncio.run, _prepare(prov)).result()
    port = prov.cfg.server.port
    with worker_process(prov.cfg, port, tmp / "cloud.log"):
        yield f"http://127.0.0.1:{port}", prov, secrets


def sign_in(page: Any, url: str, user: str, secret: str) -> None:
    page.goto(f"{url}/ui/login")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=totp]", code(secret))
    page.click("button[type=submit].primary")
    page.wait_for_url("**/ui/**")


def shots(page: Any, url: str, path: str, name: str) -> None:
    """Screenshot ``path`` in both languages (the session keeps the language in a cookie)."""
    for lang in LANGS:
        page.goto(f"{url}{path}{'&' if '?' in path else '?'}lang={lang}")
        screenshot(page, f"cloud-{name}-{lang}")
    page.goto(f"{url}/ui/?lang=zh-CN")


def test_integration_engineer_watches_replays_and_searches(browser: Any, live: Any) -> None:  # noqa: F811
    url, prov, secrets = live
    page = new_page(browser, "zh-CN")
    page.goto(f"{url}/ui/login")
    screenshot(page, "cloud-login-zh-CN")
    page.goto(f"{url}/ui/login?lang=en")
    screenshot(page, "cloud-login-en")
    page.goto(f"{url}/ui/login?lang=zh-CN")
    sign_in(page, url, "ops", secrets["ops"])
    assert page.url.endswith("/ui/dashboard")
    assert page.text_content("[data-live=outbox-dead]") == "2"

    # a second message dies while the page is open: the number changes without a reload (SSE)
    db = sqlite3.connect(prov.cfg.database.url.removeprefix("sqlite:///"))
    with db:
        db.execute("UPDATE outbox SET status = 'dead', last_error = 'HTTP 503' WHERE idempotency_key = ?",
                   ("mch.upload/case-8",))
    db.close()
    # (a locator assertion, not wait_for_function: the page CSP forbids eval)
    expect(page.locator("[data-live=outbox-dead]")).to_have_text("3", timeout=20_000)

    row = page.locator("tr.dead-letter", has_text="mch.upload/case-7")
    assert "筛查日期晚于上报日期" in row.inner_text()
    row.locator("button").click()
    page.wait_for_url("**/ui/dashboard?replayed=*")
    assert page.locator(".flash.ok").is_visible()
    assert page.locator("tr.dead-letter", has_text="mch.upload/case-7").count() == 0

    page.fill("form.search input[name=q]", NID)
    page.click("form.search button")
    page.wait_for_url("**/ui/dashboard/search")  # posted: the ID number is in no URL
    assert NID not in page.url
    text = page.inner_text("main")
    assert "1101**********002X" in text and NID not in text
    assert page.locator(".watermark").count() == 1
    screenshot(page, "cloud-search-patient-zh-CN")
    shots(page, url, "/ui/dashboard/search?q=MSG0003", "search-message")
    shots(page, url, "/ui/registers?name=workload", "registers")
    assert "S1" in page.locator("main").inner_text() or "城关" in page.locator("main").inner_text()
    page.context.close()


def test_admin_enrolls_a_hub_with_a_one_time_token_and_revokes_it(browser: Any, live: Any,  # noqa: F811
                                                                   tmp_path: Path) -> None:
    url, _, secrets = live
    page = new_page(browser, "zh-CN")
    sign_in(page, url, "root", secrets["root"])
    assert page.url.endswith("/ui/admin")

    page.fill("#sites input[name=site_id]", "dongcheng")
    page.fill("#sites input[name=name]", "东城社区卫生服务中心")
    page.click("#sites button[type=submit]")
    page.wait_for_url("**/ui/admin?ok=dongcheng")
    page.select_option("#tokens select[name=site_id]", "dongcheng")
    page.click("#tokens button[type=submit]")
    token = page.text_content("#new-token") or ""
    assert token
    screenshot(page, "cloud-admin-token-zh-CN")

    state = hubside.enroll(url, token, tmp_path / "hub", hub_serial="PI-0001")  # the hub, as `mchub edge enroll`
    hub_id = state.identity.hub_id
    page.goto(f"{url}/ui/admin")
    assert token not in page.content()  # shown once
    hub_row = page.locator(f"#hub-{hub_id}")
    assert "在线" in hub_row.inner_text() or "离线" in hub_row.inner_text()
    hub_row.locator("input[name=reason]").fill("设备丢失")
    hub_row.locator("button.danger").click()
    page.wait_for_url(f"**/ui/admin?ok={hub_id}")
    assert "已吊销" in page.locator(f"#hub-{hub_id}").inner_text()
    with pytest.raises(ProvisioningError):
        hubside.fetch_config(state)  # the revoked hub is refused
    shots(page, url, "/ui/admin", "admin")
    shots(page, url, "/ui/admin/users", "users")
    shots(page, url, "/ui/admin/devices", "devices")
    shots(page, url, f"/ui/admin/audit?hub={hub_id}", "audit")
    page.context.close()
