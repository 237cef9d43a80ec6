"""Headless Chromium against a real hub process with simulated card reader, BP monitor and scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.edge.web.hubproc import patient, running_hub
from tests.edge.web.walks import kiosk_walk, status_walk
from tests.support.browser import browser, needs_chromium, new_page  # noqa: F401 - browser is a fixture


@needs_chromium
def test_kiosk_session_then_staff_bind_on_the_status_page(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    with running_hub(tmp_path / "hub") as hub:
        kiosk = new_page(browser, "zh-CN")
        kiosk_walk(kiosk, hub, patient(0), "zh-CN")
        kiosk_walk(kiosk, hub, patient(1), "en")  # the next patient, in English, on the same screen
        status_walk(new_page(browser, "zh-CN"), hub, "zh-CN")
        audit = (hub.data_dir / "hub.db").exists()
    assert audit
