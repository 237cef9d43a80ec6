"""Screenshots of the hub's pages for the documentation: ``python -m tests.edge.web.screenshots``.

Runs a real hub process with the simulated station, walks a patient through the kiosk and
a nurse through the status page in headless Chromium, and saves into ``docs/screenshots/``:

    hub-kiosk-<state>-<lang>-<W>x<H>.png   idle, identified, measuring, results, summary
                                           (zh-CN and en; 1280x800 and a 10-inch 1024x600), and
                                           summary-child / summary-pregnant (a 4-year-old; 160/102
                                           at 13 weeks)
    hub-status-<lang>-1280x800.png         the status page, and ...-bound after binding a reading
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.edge.web.hubproc import child, patient, pregnant, running_hub
from tests.edge.web.walks import group_results_walk, kiosk_walk, status_walk
from tests.support.browser import ARGS, CHROMIUM, SCREENSHOTS, new_page, screenshot

SIZES = ((1280, 800), (1024, 600))


def main() -> int:
    """Write every screenshot; returns an exit code."""
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: apt-get install chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp, running_hub(Path(tmp) / "hub") as hub, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        n = 0
        for lang in ("zh-CN", "en"):
            for width, height in SIZES:
                def shoot(page: Any, state: str, lang: str = lang, size: str = f"{width}x{height}") -> None:
                    written.append(screenshot(page, f"hub-kiosk-{state}-{lang}-{size}"))

                # each walk's pages are closed after it: an open page keeps its live-update stream, and
                # the hub allows a client address only so many connections ([web] max_connections_per_ip)
                page = new_page(browser, lang, width, height)
                kiosk_walk(page, hub, patient(n), lang, shoot)
                page.context.close()
                n += 1
                for who in (child(), pregnant()):
                    page, nurse = new_page(browser, lang, width, height), new_page(browser, lang)
                    group_results_walk(page, hub, who, lang, shoot, nurse=nurse)
                    page.context.close()
                    nurse.context.close()
            status_walk(new_page(browser, lang), hub, lang,
                        lambda page, state, lang=lang: written.append(screenshot(page, f"hub-{state}-{lang}-1280x800")))
        browser.close()
    for path in written:
        print(path.relative_to(SCREENSHOTS.parents[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
