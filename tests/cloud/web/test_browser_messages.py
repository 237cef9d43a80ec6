"""The message browser end to end: a real ``mchub cloud serve`` with its MLLP listener, python-hl7's
MLLP client sending a message the listener refuses, headless Chromium finding it, reading the raw
message and the ERR it was answered with, the cause fixed in cloud.toml, and the message reprocessed
— once; reprocessing it again produces no second set of results.

Screenshots: docs/screenshots/cloud-messages-{zh-CN,en}.png (the list) and
cloud-message-detail-{zh-CN,en}.png (the detail), 1280x800.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hl7.client import MLLPClient

from cloud.config import CloudConfig, load
from firmware_sim.his import lab_message
from tests.cloud.support import free_port, make_cloud, worker_process
from tests.cloud.web.support import PASSWORD, WEB, code, running
from tests.support.browser import browser, needs_chromium, new_page, screenshot  # noqa: F401
from tests.support.waiting import HANG_S

pytestmark = [needs_chromium, pytest.mark.slow]
MASKED = "1101**********002X"  #: the national ID of firmware_sim.his.lab_message, masked


def mllp_toml(port: int, apps: str) -> str:
    return f'[mllp]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\nallowed_apps = [{apps}]\n'


async def _users(cfg: CloudConfig) -> str:
    async with running(cfg) as cloud:
        return await cloud.user("ops", "integration")


def send(port: int, *messages: bytes) -> list[bytes]:
    """Each message on its own connection (a refused sender's connection is closed after the answer)."""
    answers = []
    for raw in messages:
        with MLLPClient("127.0.0.1", port) as client:  # python-hl7's blocking client
            client.socket.settimeout(30)
            answers.append(client.send_message(raw))
    return answers


def results(cfg: CloudConfig) -> int:
    db = sqlite3.connect(cfg.database.url.removeprefix("sqlite:///"))
    try:
        return int(db.execute("SELECT COUNT(*) FROM results").fetchone()[0])
    finally:
        db.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("messages")
    mllp = free_port()
    cfg, _ = make_cloud(tmp / "cloud", f"sqlite:///{tmp / 'cloud' / 'cloud.db'}", WEB + mllp_toml(mllp, '"LIS"'))
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API may already run a loop in this thread
        secret = pool.submit(asyncio.run, _users(cfg)).result()
    yield {"cfg": cfg, "mllp": mllp, "secret": secret, "tmp": tmp}


def sign_in(page: Any, url: str, secret: str) -> None:
    page.goto(f"{url}/ui/login")
    page.fill("input[name=user]", "ops")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=totp]", code(secret))
    page.click("button[type=submit].primary")
    page.wait_for_url("**/ui/**")


def test_find_a_refused_message_read_its_err_fix_the_cause_and_reprocess_it(browser: Any,  # noqa: F811
                                                                             live: dict[str, Any]) -> None:
    cfg, port, tmp = live["cfg"], live["cfg"].server.port, live["tmp"]
    url = f"http://127.0.0.1:{port}"
    page = new_page(browser, "zh-CN")
    refused = lab_message(2).replace(b"|LIS|", b"|LAB2|", 1)  # a new analyser nobody allowed yet
    with worker_process(cfg, port, tmp / "cloud.log"):
        good, bad = send(live["mllp"], lab_message(1), refused)
        assert b"MSA|AA|LIS00000001" in good and b"MSA|AR|LIS00000002" in bad and b"ERR|" in bad

        sign_in(page, url, live["secret"])
        page.goto(f"{url}/ui/dashboard/messages")
        page.select_option("form.filters select[name=state]", "rejected")
        page.click("form.filters button.primary")
        row = page.locator("table.messages tbody tr", has_text="LIS00000002")
        assert "已拒收" in row.inner_text() and "发送系统不在允许列表中" in row.inner_text()
        assert page.locator("table.messages tbody tr", has_text="LIS00000001").count() == 0
        for lang in ("en", "zh-CN"):
            page.goto(f"{url}/ui/dashboard/messages?lang={lang}")
            screenshot(page, f"cloud-messages-{lang}")
        page.locator("table.messages a", has_text="LIS00000002").click()
        page.wait_for_url("**/ui/dashboard/messages/hl7_in/*")
        detail = page.url
        assert "MSH|^~\\&|LAB2|" in page.inner_text("pre.hl7.raw")
        assert "11010519491231002X" not in page.inner_text("main") and MASKED in page.inner_text("pre.hl7.raw")
        assert "MSA|AR|LIS00000002" in page.inner_text("pre.hl7.ack")
        err = page.inner_text("table.err")
        assert "ERR-3" in err and "HL7 Error Code" in err and "LAB2" in err
        assert page.locator("details.segment summary", has_text="OBX").count() == 4
        for lang in ("en", "zh-CN"):
            page.goto(f"{detail}?lang={lang}")
            screenshot(page, f"cloud-message-detail-{lang}")
        page.set_viewport_size({"width": 1024, "height": 600})  # a ward PC's small screen
        for name, where in (("cloud-messages", f"{url}/ui/dashboard/messages"), ("cloud-message-detail", detail)):
            page.goto(f"{where}?lang=zh-CN")
            screenshot(page, f"{name}-zh-CN-1024x600")
        page.set_viewport_size({"width": 1280, "height": 800})
    assert results(cfg) == 4  # the accepted message's results only

    # the cause: cloud.toml did not allow the new analyser; fixed, the cloud restarted
    text = cfg.path.read_text().replace('allowed_apps = ["LIS"]', 'allowed_apps = ["LIS", "LAB2"]')
    cfg.path.write_text(text)
    cfg = load(cfg.path)
    with worker_process(cfg, port, tmp / "cloud.log"):  # the sign-in session lives in the database: still valid
        page.goto(detail)
        page.click("button.send-again")
        page.wait_for_url("**done=1**")
        assert page.locator(".flash.ok").is_visible()
        deadline = time.monotonic() + HANG_S  # the processor picks it up within its idle period
        while "已处理" not in page.inner_text("dl.facts") and time.monotonic() < deadline:
            page.wait_for_timeout(300)
            page.reload()
        assert "已处理" in page.inner_text("dl.facts")
        assert MASKED in page.inner_text("p.patient")
        assert page.locator("table.results tbody tr", has_text="718-7").count() == 1
        assert results(cfg) == 8

        # reprocessed again in bulk from the list: still one set of results
        page.goto(f"{url}/ui/dashboard/messages")
        page.locator("table.messages tbody tr", has_text="LIS00000002").locator("input[type=checkbox]").check()
        page.click("button.send-again")
        page.wait_for_url("**done=1**")
        deadline = time.monotonic() + HANG_S
        while "已处理" not in page.locator("table.messages tbody tr", has_text="LIS00000002").inner_text() \
                and time.monotonic() < deadline:
            page.wait_for_timeout(300)
            page.reload()
        assert results(cfg) == 8
        page.context.close()

