"""Headless Chromium for browser tests: the Debian ``chromium`` driven by Python Playwright.

No browser is downloaded: Playwright starts ``/usr/bin/chromium`` (Debian package
``chromium``; ``.ci/run`` installs it). Tests that need it are skipped with a clear
reason only when that file is missing.

    from tests.support.browser import browser, needs_chromium, new_page, screenshot  # noqa: F401

    @needs_chromium
    def test_page(browser):                          # a sync test: Playwright's sync API
        page = new_page(browser, lang="en")          # 1280x800, Accept-Language en
        page.goto(url)
        screenshot(page, "status-en")                # docs/screenshots/status-en.png

Playwright's sync API runs its own event loop, so browser tests are plain ``def`` tests
and the server under test runs in another process (or thread). While Playwright runs,
no asyncio test can run in the same thread: the fixture is module-scoped, so it stops
at the end of the browser test module — keep browser tests in modules of their own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import HANG_S

CHROMIUM = Path(os.environ.get("MCHUB_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: install the Debian package `chromium` "
                                  "(apt-get install chromium) to run the browser tests")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for the tests of one module (see the module docstring)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=HANG_S * 1000)  # expect() has its own default (5 s), not the context's
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()


def new_page(browser: Any, lang: str = "zh-CN", width: int = 1280, height: int = 800,
             timeout_ms: float = HANG_S * 1000) -> Any:
    """A page in a fresh browser context (own cookies) with the given language and viewport.

    ``timeout_ms`` bounds every wait (a hang becomes a failure, a loaded machine does not); nothing
    is asserted on time.
    """
    context = browser.new_context(viewport={"width": width, "height": height}, locale=lang,
                                  extra_http_headers={"Accept-Language": lang})
    context.set_default_timeout(timeout_ms)
    return context.new_page()


def screenshot(page: Any, name: str) -> Path:
    """Save ``docs/screenshots/<name>.png`` (the documentation links these)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    from playwright.sync_api import Error as PlaywrightError

    for attempt in range(3):  # a documentation picture, not an assertion: on a machine at load 15+, Chromium
        try:  # once answered "Unable to capture screenshot" (Page.captureScreenshot) while the page was fine
            page.screenshot(path=str(path), full_page=False)
            return path
        except PlaywrightError as exc:
            if "Unable to capture screenshot" not in str(exc) or attempt == 2:
                raise
            page.wait_for_timeout(500)
    return path
