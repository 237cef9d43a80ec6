"""Issue 20 in headless Chromium against a real ``mchub cloud serve`` process: the dashboard's ECharts
charts render (a canvas each, no console error, so nothing the CSP refused), and an integration
engineer matches a waiting lab result to a candidate by a click and undoes it.

Saves docs/screenshots/cloud-dashboard-*.png and cloud-unmatched-*.png (1280x800).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from playwright.sync_api import expect

from cloud.config import CloudConfig
from protocol.ids import now_ms
from tests.cloud.support import make_cloud, worker_process
from tests.cloud.web.support import PASSWORD, WEB, code, running, seed, seed_history, seed_worklist
from tests.support.browser import browser, needs_chromium, new_page, screenshot  # noqa: F401

pytestmark = [needs_chromium, pytest.mark.slow]
LANGS = ("zh-CN", "en")


async def _prepare(cfg: CloudConfig, keys: Any) -> dict[str, Any]:
    async with running(cfg) as cloud:
        await seed(cloud, keys)
        await seed_history(cloud, now_ms())
        ids = await seed_worklist(cloud)
        return {"ops": await cloud.user("ops", "integration"), **ids}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, CloudConfig, dict[str, Any]]]:
    """A seeded cloud served by a real worker process."""
    tmp = tmp_path_factory.mktemp("worklist")
    cfg, keys = make_cloud(tmp / "cloud", f"sqlite:///{tmp / 'cloud' / 'cloud.db'}", WEB)
    port = cfg.server.port
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API may already run a loop in this thread
        facts = pool.submit(asyncio.run, _prepare(cfg, keys)).result()
    with worker_process(cfg, port, tmp / "cloud.log"):
        yield f"http://127.0.0.1:{port}", cfg, facts


_USED: set[str] = set()


def _unused_code(secret: str) -> str:
    """The current one-time code, or the next one when this module already signed in with it (a code
    counts as spent once used: a second sign-in within its 30 s takes the next code, as a person waits)."""
    current = code(secret)
    chosen = code(secret, 1) if current in _USED else current
    _USED.add(chosen)
    return chosen


def signed_in(browser: Any, url: str, secret: str) -> tuple[Any, list[str]]:  # noqa: F811
    """A page signed in as ``ops``, and the list its console errors and page errors are collected in."""
    page = new_page(browser, "zh-CN")
    problems: list[str] = []

    def console(m: Any) -> None:  # the browser's own /favicon.ico request (the pages name none) is not the page's
        if m.type == "error" and not m.location.get("url", "").endswith("/favicon.ico"):
            problems.append(f"console {m.type}: {m.text} {m.location}")

    page.on("console", console)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    page.goto(f"{url}/ui/login")
    page.fill("input[name=user]", "ops")
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=totp]", _unused_code(secret))
    page.click("button[type=submit].primary")
    page.wait_for_url("**/ui/**")
    return page, problems


def test_the_dashboard_charts_render_with_echarts_and_no_console_error(browser: Any, live: Any) -> None:  # noqa: F811
    url, _, facts = live
    page, problems = signed_in(browser, url, facts["ops"])
    for lang in LANGS:
        page.goto(f"{url}/ui/dashboard?lang={lang}")
        for chart in ("traffic", "errors", "lag"):  # ECharts replaced the placeholder with its canvas
            expect(page.locator(f"[data-chart={chart}] canvas")).to_have_count(1)
        assert page.locator("#charts figcaption").first.inner_text() == (
            "每小时流量（近24小时，北京时间）" if lang == "zh-CN" else "Traffic per hour (last 24 h, China time)")
        box = page.locator("[data-chart=traffic] canvas").bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] >= 250
        page.locator("[data-chart=traffic]").hover()  # the tooltip is drawn on the canvas (richText): no DOM, no CSP
        screenshot(page, f"cloud-dashboard-{lang}")  # the charts are in view at 1280x800, one tooltip open
    assert problems == []  # no script error, nothing refused by the Content-Security-Policy
    page.goto(f"{url}/ui/dashboard?lang=zh-CN")
    page.context.close()


def test_an_engineer_matches_a_result_by_click_and_undoes_it(browser: Any, live: Any) -> None:  # noqa: F811
    url, cfg, facts = live
    item, her = facts["item"], facts["her"]
    page, problems = signed_in(browser, url, facts["ops"])
    for lang in ("en", "zh-CN"):
        page.goto(f"{url}/ui/dashboard/unmatched?lang={lang}")
        screenshot(page, f"cloud-unmatched-{lang}")
    page.set_viewport_size({"width": 1024, "height": 600})  # a ward PC's small screen
    for name, where in (("cloud-dashboard", "dashboard"), ("cloud-unmatched", "dashboard/unmatched")):
        page.goto(f"{url}/ui/{where}?lang=zh-CN")
        screenshot(page, f"{name}-zh-CN-1024x600")
    page.set_viewport_size({"width": 1280, "height": 800})
    row = page.locator(f"#item-{item}")
    assert "血红蛋白" in row.inner_text() and "偏低 ↓" in row.inner_text() and "王**" in row.inner_text()
    first = row.locator("ol.candidates li").first
    assert "1101**********002X" in first.inner_text()  # her, ranked first
    first.locator("button").click()
    page.wait_for_url(f"**/ui/dashboard/unmatched?matched={item}*")
    expect(page.locator(f"#item-{item}")).to_have_count(0)
    matched = page.locator(f"#matched-{item}")
    assert "1101**********002X" in matched.inner_text()
    db = sqlite3.connect(cfg.database.url.removeprefix("sqlite:///"))
    try:
        def owners() -> set[Any]:
            return {r[0] for r in db.execute("SELECT subject_id FROM results WHERE origin LIKE 'hl7:%'")}

        assert owners() == {her}
        matched.locator("button").click()  # undo
        page.wait_for_url(f"**/ui/dashboard/unmatched?undone={item}")
        expect(page.locator(f"#item-{item}")).to_have_count(1)
        assert owners() == {None}
        trail = [r[0] for r in db.execute("SELECT action FROM audit_log WHERE action LIKE 'unmatched.%' ORDER BY id")]
        assert trail == ["unmatched.resolve", "unmatched.undo"]
    finally:
        db.close()
    assert problems == []
    page.context.close()
