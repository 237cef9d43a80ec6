"""The cloud pages end to end in headless Chromium against a real ``mchub cloud serve`` process.

An integration engineer signs in (password + TOTP), watches a number change live over
Server-Sent Events, replays a dead letter and looks a patient up (masked); an admin
mints an enrollment token that a real hub enrolls with, then revokes that hub; an admin
enrols a new user whose phone reads the one-time-code QR code off the screen (decoded
here with zxing-cpp, as a phone's camera would), the new user signs in with a code, and
the admin removes a device after confirming it with a reason. Every page is saved in
zh-CN and English under docs/screenshots/cloud-*.png (1280x800); the dashboard and the work
list by test_browser_worklist.py, with a day of traffic behind the charts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import sqlite3
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
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


def sign_in(page: Any, url: str, user: str, secret: str, offset_steps: int = 0) -> None:
    """Sign in; a second sign-in of the same user within 30 s takes the next code (``offset_steps=1``)."""
    page.goto(f"{url}/ui/login")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=totp]", code(secret, offset_steps))
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
    expect(page.locator("[data-live=outbox-dead]")).to_have_text("3")

    row = page.locator("tr.dead-letter", has_text="mch.upload/case-7")
    assert "接收方拒收或无法送达" in row.inner_text()  # the reason in the reader's words, the receiver's behind 详情
    row.locator("summary").click()
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
    shots(page, url, f"/ui/admin/audit?hub={hub_id}", "audit")
    page.context.close()


def scan_qr(page: Any, selector: str) -> str:
    """What a phone reads from the QR code on screen: the element's pixels, decoded."""
    png = page.locator(selector).screenshot()
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode, found
    return str(found[0].text)


def test_admin_enrols_a_user_by_qr_code_and_removes_a_device_with_a_reason(browser: Any, live: Any) -> None:  # noqa: F811
    url, prov, secrets = live
    page = new_page(browser, "zh-CN")
    sign_in(page, url, "root", secrets["root"], offset_steps=1)  # root signed in a moment ago
    page.goto(f"{url}/ui/admin/users")
    assert page.locator("nav a.on").inner_text() == "用户"
    page.fill("input[name=username]", "wang")
    page.fill("input[name=display_name]", "王护士长")
    page.fill("input[name=password]", PASSWORD)
    page.check("fieldset input[value=integration]")
    page.click("form.grid button.primary")
    screenshot(page, "cloud-users-enrol-zh-CN")

    uri = scan_qr(page, "#totp-qr svg")  # the phone scans the code
    parts = urllib.parse.urlsplit(uri)
    query = urllib.parse.parse_qs(parts.query)
    assert parts.scheme == "otpauth" and parts.netloc == "totp" and urllib.parse.unquote(parts.path) == "/mchub:wang"
    secret = query["secret"][0]
    assert query["issuer"] == ["mchub"] and query["digits"] == ["6"] and query["period"] == ["30"]
    assert not page.locator("#totp-secret").is_visible()  # the text secret waits behind the disclosure
    page.click("details.manual summary")
    assert page.text_content("#totp-secret") == secret
    assert "待确认" in page.locator("#user-wang").inner_text()

    # the new user confirms the first code the app shows (the previous step's, so the current one is unused)
    page.fill("#totp-confirm input[name=code]", code(secret, -1))
    page.click("#totp-confirm button")
    page.wait_for_url("**/ui/admin/users?ok=wang")
    assert "已启用" in page.locator("#user-wang").inner_text()
    assert secret not in page.content()  # shown once
    shots(page, url, "/ui/admin/users", "users")

    newcomer = new_page(browser, "zh-CN")
    sign_in(newcomer, url, "wang", secret)
    assert newcomer.url.endswith("/ui/dashboard")
    newcomer.context.close()

    # a device on a named station, then its removal: confirmation and a reason, kept in the audit log
    page.goto(f"{url}/ui/admin/devices?lang=zh-CN")
    assert page.locator("nav a.on").inner_text() == "设备"
    form = page.locator("#add-device")
    form.locator("select[name=hub_id]").select_option("H1")
    form.locator("input[name=station]").fill("一诊室")
    form.locator("input[name=kind]").fill("ble-bp")
    form.locator("input[name=address]").fill("AA:BB:CC:DD:EE:42")
    form.locator("input[name=label]").fill("血压计")
    form.locator("button.primary").click()
    page.wait_for_url("**/ui/admin/devices?ok=*")
    row = page.locator("tr.device", has_text="AA:BB:CC:DD:EE:42")
    assert "一诊室" in row.inner_text() and "已配置但未连接" in row.inner_text()
    assert page.locator("tr.device.not_configured").count() >= 1  # what H1 reported is still listed
    shots(page, url, "/ui/admin/devices", "devices")
    page.goto(f"{url}/ui/admin/devices?lang=zh-CN")
    row = page.locator("tr.device", has_text="AA:BB:CC:DD:EE:42")
    row.locator("a.danger").click()
    dialog = page.locator("#confirm-remove")
    assert "一诊室" in dialog.inner_text()
    screenshot(page, "cloud-devices-remove-zh-CN")
    dialog.locator("input[name=reason]").fill("送修")
    dialog.locator("button.danger").click()
    page.wait_for_url("**/ui/admin/devices?ok=*")
    assert page.locator("tr.device", has_text="AA:BB:CC:DD:EE:42").count() == 0
    db = sqlite3.connect(prov.cfg.database.url.removeprefix("sqlite:///"))
    removed = db.execute("SELECT actor, reason FROM audit_log WHERE action = 'device.remove'").fetchall()
    db.close()
    assert removed == [("web:root", "送修")]
    page.context.close()
