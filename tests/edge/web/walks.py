"""Browser walks through the hub's pages (Playwright, sync API); used by the browser tests and
``python -m tests.edge.web.screenshots``. Each step checks the page; ``shoot(page, name)``
may save a screenshot of it."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable
from typing import Any

from firmware_sim.patients import Patient
from protocol import idnum
from tests.edge.web.hubproc import PIN, RunningHub

Shoot = Callable[[Any, str], None]


def _none(_page: Any, _name: str) -> None:
    pass


def traces_of(p: Patient) -> list[str]:
    """Strings that must not be on the kiosk once the patient's session closed."""
    return [p.national_id, p.name, idnum.mask_name(p.name), idnum.mask(p.national_id), f"{p.systolic}/{p.diastolic}"]


def kiosk_walk(page: Any, hub: RunningHub, p: Patient, lang: str = "zh-CN", shoot: Shoot = _none) -> None:
    """One patient through the kiosk: card, cuff, BP, height/weight, summary, finish, idle."""
    en = lang == "en"
    url = f"{hub.url}/kiosk/room-1?lang={lang}"
    page.goto(url)
    page.wait_for_selector('#kiosk [data-phase="idle"]')
    assert ("Please place your ID card" if en else "请将身份证放在读卡器上") in page.inner_text("#kiosk")
    shoot(page, "idle")

    assert _steps(page) == [("card", "next"), ("height_weight", "todo"), ("bp", "todo")]

    hub.rig.place_card(p)
    page.wait_for_selector('#kiosk [data-phase="identified"]')
    text = page.inner_text("#kiosk")
    assert idnum.mask_name(p.name) in text and p.name not in text
    assert p.national_id not in page.content() and idnum.mask(p.national_id) not in page.content()
    assert _steps(page) == [("card", "done"), ("height_weight", "next"), ("bp", "todo")]
    assert ("Next: Height and weight" if en else "下一步：请测身高体重") in page.inner_text(".kiosk-next")
    shoot(page, "identified")

    hub.rig.inflate([40, 80, 120, 150, 172])
    page.wait_for_selector('#kiosk [data-phase="measuring"] .kiosk-cuff-value')
    page.wait_for_function("document.querySelector('.kiosk-cuff-value').textContent.trim() === '172'")
    assert _steps(page) == [("card", "done"), ("height_weight", "todo"), ("bp", "next")]  # what she does now
    shoot(page, "measuring")

    hub.rig.bp(p.systolic, p.diastolic, p.pulse)
    page.wait_for_selector('#kiosk [data-phase="results"]')
    bp_row = page.inner_text('[data-result="obs.bp"]')
    assert f"{p.systolic}/{p.diastolic}" in bp_row
    assert _steps(page) == [("card", "done"), ("height_weight", "next"), ("bp", "done")]  # she did BP first
    assert page.locator('[aria-current="step"] .what').inner_text().strip() == (
        "Height and weight" if en else "测身高体重")
    _fits_the_screen(page)
    shoot(page, "results")

    hub.rig.step_on(p)
    page.wait_for_selector('#kiosk [data-phase="summary"]')
    for label in ("obs.bp", "obs.8867-4", "obs.8302-2", "obs.29463-7", "obs.39156-5"):
        assert page.locator(f'[data-result="{label}"]').count() == 1, label
    assert page.locator(".kiosk-overall").count() == 1
    assert _steps(page) == [("card", "done"), ("height_weight", "done"), ("bp", "done")]
    assert page.locator("[data-qr] svg path").count() == 1  # the summary as a QR code
    _fits_the_screen(page)
    shoot(page, "summary")

    page.click("button.kiosk-button")  # "完成 / Finish": closes the session, then the page reloads clean
    page.wait_for_selector('#kiosk [data-phase="idle"]')
    page.wait_for_load_state("load")
    rendered, source = page.content(), _get(url)
    for trace in traces_of(p):
        assert trace not in rendered and trace not in source, trace


def _steps(page: Any) -> list[tuple[str, str]]:
    """The kiosk's step list as (step, done/next/todo)."""
    return [(li.get_attribute("data-step"), li.get_attribute("data-state"))
            for li in page.locator("#kiosk .kiosk-steps li").all()]


def _fits_the_screen(page: Any) -> None:
    """Results are at least 28 px, and the card fills the screen (no empty bottom third) without scrolling."""
    sizes = page.eval_on_selector_all(".kiosk-results th, .kiosk-results td",
                                      "els => els.map(e => parseFloat(getComputedStyle(e).fontSize))")
    assert sizes and min(sizes) >= 28, sizes
    box = page.eval_on_selector(".kiosk-card", "e => e.getBoundingClientRect().bottom")
    height, scroll = page.evaluate("[innerHeight, document.documentElement.scrollHeight]")
    assert box >= 0.9 * height and scroll <= height + 1, (box, height, scroll)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return str(r.read().decode())


def status_walk(page: Any, hub: RunningHub, lang: str = "zh-CN", shoot: Shoot = _none) -> None:
    """Sign in (a wrong PIN first); what needs action comes first; a reading taken while nobody was
    identified appears without a page reload and the nurse binds it to one of the station's visits;
    she registers a patient by hand, finds the visit with the search box and ends it."""
    en = lang == "en"
    hub.rig.bp(128, 82, 70)  # nobody identified: stored unbound
    page.goto(f"{hub.url}/?lang={lang}")
    page.wait_for_selector('input[name="user"]')
    assert "/login" in page.url
    page.fill('input[name="user"]', "nurse")
    page.fill('input[name="password"]', "000000")
    page.click("button[type=submit]")
    assert ("Wrong user name or password" if en else "用户名或密码错误") in page.inner_text("main")
    page.fill('input[name="user"]', "nurse")
    page.fill('input[name="password"]', PIN)
    page.click("button[type=submit]")
    page.wait_for_selector("#status")
    assert ("Hub status" if en else "网关状态") in page.title()
    for device in ("card-1", "scale-1", "bp-1"):
        assert page.locator(f'tr[data-device="{device}"]').count() == 1
    page.wait_for_selector('tr[data-device="bp-1"] td.devstate.state-ok')
    page.wait_for_selector("tr[data-unbound]")
    tops = page.evaluate("['needs-action', 'visits', 'devices'].map(id => document.getElementById(id)"
                         ".getBoundingClientRect().top)")
    assert tops == sorted(tops), tops  # needs action first
    assert page.locator(".watermark").count() == 1 and "nurse" in page.inner_text(".watermark")
    assert "**********" in page.inner_text("table.sessions")  # the ID number only masked
    assert "room-1" not in page.inner_text("main")  # stations by name
    assert page.locator("tr[data-visit] .value").count() > 0  # today's visits with their values

    page.evaluate("window.notReloaded = true")
    before = page.locator("tr[data-unbound]").count()
    hub.rig.bp(131, 84, 72)  # another one: the list grows live
    page.locator("tr[data-unbound]").nth(before).wait_for()  # the page's CSP allows no wait_for_function
    assert page.evaluate("window.notReloaded === true")
    shoot(page, "status")

    row = page.locator("tr[data-unbound]").first
    options = row.locator("select option").all_inner_texts()
    assert 0 < len(options) <= 5, options  # the station's visits nearest in time, not the whole day
    row.locator("form.bind button").click()
    page.wait_for_selector(".flash")
    assert page.locator("tr[data-unbound]").count() == before
    shoot(page, "status-bound")

    page.select_option('form.entry select[name="station_id"]', "room-1")
    page.fill('form.entry input[name="name"]', "周晓梅")
    page.click("form.entry button[type=submit]")
    page.wait_for_selector(".flash")
    total = page.locator("tr[data-visit]").count()
    page.fill("#visit-search", "周*")  # filters as she types
    visible = page.locator("tr[data-visit]:not([hidden])")
    assert 0 < visible.count() < total and all("周*" in text for text in visible.all_inner_texts())
    visible.locator("form.end-visit button").click()  # the one still open
    page.wait_for_selector(".flash")
    assert ("Visit ended" if en else "已结束就诊") in page.inner_text(".flash")
    assert page.locator("form.end-visit").count() == 0  # no open visit left
    assert ("ended a visit" if en else "结束就诊") in page.inner_text("#actions")


def sign_in(page: Any, hub: RunningHub, lang: str = "zh-CN") -> None:
    """The nurse signs in on the status page."""
    page.goto(f"{hub.url}/?lang={lang}")
    page.wait_for_selector('input[name="user"]')
    page.fill('input[name="user"]', "nurse")
    page.fill('input[name="password"]', PIN)
    page.click("button[type=submit]")
    page.wait_for_selector("#status")


def group_results_walk(page: Any, hub: RunningHub, p: Patient, lang: str = "zh-CN", shoot: Shoot = _none,
                       nurse: Any = None) -> str:
    """A child (ID card) or a pregnant woman (the nurse enters her with her weeks of pregnancy) measured
    at the kiosk; returns the summary text. Children's values carry no adult judgement; a severe-range
    blood pressure in pregnancy tells her to see the nurse now."""
    en = lang == "en"
    url = f"{hub.url}/kiosk/room-1?lang={lang}"
    page.goto(url)
    page.wait_for_selector('#kiosk [data-phase="idle"]')
    if p.pregnant_weeks is not None:
        assert nurse is not None, "a pregnant woman is entered by the nurse"
        sign_in(nurse, hub, lang)
        nurse.select_option('form.entry select[name="station_id"]', "room-1")
        nurse.fill('form.entry input[name="name"]', p.name)
        nurse.fill('form.entry input[name="national_id"]', p.national_id)
        nurse.fill('form.entry input[name="pregnant_weeks"]', str(p.pregnant_weeks))
        nurse.click("form.entry button[type=submit]")
        nurse.wait_for_selector(".flash")
    else:
        hub.rig.place_card(p)
    page.wait_for_selector('#kiosk [data-phase="identified"]')
    hub.rig.bp(p.systolic, p.diastolic, p.pulse)
    page.wait_for_selector('#kiosk [data-phase="results"]')
    hub.rig.step_on(p)
    page.wait_for_selector('#kiosk [data-phase="summary"]')
    text = page.inner_text("#kiosk")
    if p.group == "child":
        # pulse 105 at 4 years is inside Fleming's 1st-99th centile, BMI 16.1 normal for WHO: no adult words
        assert ("slightly fast" if en else "略快") not in text
        assert ("underweight" if en else "偏瘦") not in text
    if p.pregnant_weeks is not None and (p.systolic >= 160 or p.diastolic >= 110):
        assert ("very high: please see the nurse now" if en else "很高，请马上找护士") in text
    shoot(page, f"summary-{p.group}")
    page.click("button.kiosk-button")
    page.wait_for_selector('#kiosk [data-phase="idle"]')
    return text
