"""Headless Chromium against a real hub process with simulated card reader, BP monitor and scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.edge.web.hubproc import child, patient, pregnant, running_hub
from tests.edge.web.walks import group_results_walk, kiosk_walk, status_walk
from tests.support.browser import browser, needs_chromium, new_page  # noqa: F401 - browser is a fixture


@needs_chromium
def test_kiosk_session_then_staff_bind_on_the_status_page(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    with running_hub(tmp_path / "hub") as hub:
        kiosk = new_page(browser, "zh-CN")
        kiosk_walk(kiosk, hub, patient(0), "zh-CN")
        kiosk.context.close()
        small = new_page(browser, "en", 1024, 600)  # the next patient, in English, on a 10-inch screen
        kiosk_walk(small, hub, patient(1), "en")
        small.context.close()
        status_walk(new_page(browser, "zh-CN"), hub, "zh-CN")
        audit = (hub.data_dir / "hub.db").exists()
    assert audit


@needs_chromium
def test_a_child_and_a_pregnant_woman_are_told_what_fits_them(browser: Any, tmp_path: Path) -> None:  # noqa: F811
    """The kiosk words results for the person measured: a 4-year-old's pulse 105 and BMI 16.1 are not
    "slightly high/low"; 160/102 at 13 weeks sends her to the nurse now, and the status page raises an alarm."""
    with running_hub(tmp_path / "hub") as hub:
        kiosk = new_page(browser, "zh-CN")
        group_results_walk(kiosk, hub, child(), "zh-CN")
        nurse = new_page(browser, "zh-CN")
        group_results_walk(kiosk, hub, pregnant(), "zh-CN", nurse=nurse)
        nurse.goto(f"{hub.url}/?lang=zh-CN")
        nurse.wait_for_selector("#urgent")
        assert "160/102" in nurse.inner_text("#urgent") and "孕13周" in nurse.inner_text("#urgent")
