"""The kiosk walks a patient through a station from hub.db and live cuff values; nothing stays after close."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from typing import Any

import aiohttp
import msgspec

from drivers.base import Measurement
from edge.store.ledger import IdentifyIn, ReadingIn
from edge.web import LOCALES as EDGE_LOCALES
from edge.web.results import rows, worst
from protocol import codes
from protocol.clinical.patient import Patient
from protocol.flags import GUIDELINE_2018
from protocol.model import Observation, Subject
from tests.edge.hubkit import wait_until
from tests.edge.web.conftest import csrf_from
from tests.support.asgi import serve
from tests.support.waiting import HANG_S
from webui.i18n import catalog

NID = "11010519491231002X"
PATIENT = Subject(national_id=NID, name="王芳", sex="2", source="idcard")


def bp(sys_: float, dia: float, pulse: float = 72) -> Measurement:
    return Measurement(kind="blood_pressure", observations=(
        Observation(code=codes.SYSTOLIC, value=sys_, unit="mm[Hg]"),
        Observation(code=codes.DIASTOLIC, value=dia, unit="mm[Hg]"),
        Observation(code=codes.PULSE, value=pulse, unit="/min")))


def cuff(value: float) -> Measurement:
    return Measurement(kind="blood_pressure", live=True,
                       observations=(Observation(code=codes.CUFF_PRESSURE, value=value, unit="mm[Hg]"),))


def test_plain_language_follows_the_guideline() -> None:
    def meaning(sys_: float, dia: float, weeks: int | None = None) -> tuple[str, str]:
        obs = [{"code": codes.SYSTOLIC, "value": sys_, "unit": "mm[Hg]", "flag": "N"},
               {"code": codes.DIASTOLIC, "value": dia, "unit": "mm[Hg]", "flag": "N"}]
        [row] = rows([{"observations": obs}], GUIDELINE_2018, Patient(pregnant_weeks=weeks))
        return row.level, row.meaning

    assert meaning(118, 76) == ("ok", "meaning.bp.normal")
    assert meaning(132, 85) == ("ok", "meaning.bp.high_normal")
    assert meaning(145, 85) == ("watch", "meaning.bp.grade_1")
    assert meaning(165, 95) == ("nurse", "meaning.bp.grade_2")
    assert meaning(142, 85, weeks=30) == ("nurse", "meaning.pregnancy.pregnancy_hypertension")
    # the severe range sends a pregnant woman to the nurse at any week, not "high, see the nurse" at 13 weeks
    assert meaning(160, 102, weeks=13) == ("nurse", "meaning.pregnancy.pregnancy_severe")
    temp = [{"code": codes.TEMPERATURE, "value": 39.2, "unit": "Cel", "flag": "HH"}]
    assert rows([{"observations": temp}])[0].level == "nurse"
    odd = [{"code": codes.PULSE, "value": 400, "unit": "/min", "flag": "A"}]
    assert rows([{"observations": odd}])[0].meaning == "meaning.again"


def test_a_child_is_told_what_a_child_is_told() -> None:
    """The issue's 4-year-old (102.6 cm, 17 kg, pulse 105): no adult "slightly high/low", weight for size by WHO."""
    child = Patient(birth_date=dt.date(2022, 11, 1), sex="M")
    obs = [{"code": codes.HEIGHT, "value": 102.6, "unit": "cm", "flag": None},
           {"code": codes.WEIGHT, "value": 17.0, "unit": "kg", "flag": None},
           {"code": codes.BMI, "value": 16.1, "unit": "kg/m2", "flag": "L"},
           {"code": codes.PULSE, "value": 105, "unit": "/min", "flag": "H"}]
    got = {r.label: (r.level, r.meaning) for r in rows([{"observations": obs}], patient=child, on=dt.date(2026, 12, 6))}
    assert got[f"obs.{codes.BMI}"] == ("ok", "meaning.growth.normal")
    assert got[f"obs.{codes.WEIGHT}"] == ("ok", "meaning.growth.normal")
    assert got[f"obs.{codes.PULSE}"] == ("ok", "meaning.pulse.normal")  # Fleming 2011 centiles for her age
    assert worst(rows([{"observations": obs}], patient=child, on=dt.date(2026, 12, 6))) == "ok"


def test_every_meaning_has_words_in_both_languages() -> None:
    """Every class the interpretation layer can give has a kiosk sentence in zh-CN and English."""
    from protocol.clinical import growth, pregnancy
    from protocol.clinical.child_bp import ChildBp
    from protocol.flags import BmiClass, BpClass

    klasses = ({f"bp.{c.value}" for c in BpClass} | {f"pregnancy.{c.value}" for c in pregnancy.PregnancyBp}
               | {f"growth.{c.value}" for c in growth.GrowthClass} | {f"bmi.{c.value}" for c in BmiClass}
               | {f"gain.{c.value}" for c in pregnancy.GainClass} | {"child.no_reference", "pregnancy.bmi_not_judged"}
               | {f"child_bp.{c.key}" for c in ChildBp}
               | {f"pulse.{w}" for w in ("normal", "high", "low")}
               | {f"temperature.{w}" for w in ("normal", "high", "very_high", "low", "recheck", "infant_fever")})
    cat = catalog(EDGE_LOCALES)
    for lang in ("zh-CN", "en"):
        missing = {k for k in klasses if f"meaning.{k}" not in cat.messages[lang]}
        assert not missing, (lang, missing)


async def test_kiosk_phases_from_card_to_close(web_hub: tuple[Any, Any]) -> None:
    hub, _ = web_hub
    kiosk = hub.kiosk
    assert (await kiosk.state("room-1"))["phase"] == "idle"
    await hub.writer.submit(IdentifyIn("room-1", PATIENT))
    st = await kiosk.state("room-1")
    assert st["phase"] == "identified" and st["name"] == "王*"
    assert [(x.device_id, x.state) for x in st["steps"]] == [("bp-1", "next")] and st["next"].device_id == "bp-1"
    assert 'aria-current="step"' in kiosk.fragment(st, "room-1", "zh-CN", "tok")
    assert (await kiosk.state("room-2"))["phase"] == "idle"  # only its own station's session
    hub._live("room-1", cuff(143))
    st = await kiosk.state("room-1")
    assert st["phase"] == "measuring" and st["cuff"] == 143
    html = kiosk.fragment(st, "room-1", "zh-CN", "tok")
    assert "143" in html and "王*" in html and NID not in html and "王芳" not in html
    await hub.writer.submit(ReadingIn("room-1", "bp-1", bp(145, 85)))
    st = await kiosk.state("room-1")
    assert st["phase"] == "summary" and st["overall"] == "watch"  # bp-1 was the station's only measuring device
    html = kiosk.fragment(st, "room-1", "en", "tok")
    assert "145/85" in html and "slightly high: tell your doctor" in html and 'action="/kiosk/room-1/finish"' in html
    assert [(x.name, x.state) for x in st["steps"]] == [("bp", "done")] and st["next"] is None
    assert "<svg" in html and "data-qr" in html  # the summary as a QR code
    assert await kiosk.finish("room-1")
    st = await kiosk.state("room-1")
    assert st["phase"] == "idle" and "session" not in st and "rows" not in st


async def test_the_qr_code_holds_only_what_the_summary_shows(web_hub: tuple[Any, Any]) -> None:
    """The code is the summary's text (date, station name, overall meaning, each result with its meaning)
    and nothing else: no name, masked or not, no ID number, no visit or hub id."""
    from edge.web import summary_qr

    hub, _ = web_hub
    kiosk = hub.kiosk
    session_id = await hub.writer.submit(IdentifyIn("room-1", PATIENT))
    await hub.writer.submit(ReadingIn("room-1", "bp-1", bp(145, 85, 70)))
    st = await kiosk.state("room-1")
    assert st["phase"] == "summary"
    cat = catalog(EDGE_LOCALES)
    text = summary_qr.payload(st["rows"], st["overall"], "血压 1", st["day"], lambda key: cat.t(key, "zh-CN"))
    assert text.splitlines() == [f"测量结果 {st['day'].isoformat()} 血压 1", "有结果略偏离正常，请告诉医生",
                                 "血压 145/85 mmHg 略高，请告诉医生", "脉搏 70 次/分 正常"]
    for secret in (NID, NID[-4:], "王芳", "王*", session_id, hub.reader.state()["hub_id"]):
        assert secret not in text, secret
    html = kiosk.fragment(st, "room-1", "zh-CN", "tok")
    assert summary_qr.svg(text) in html  # the page's code is exactly this text


async def test_summary_closes_the_session_by_itself(web_hub: tuple[Any, Any]) -> None:
    hub, _ = web_hub
    hub.cfg = dataclasses.replace(hub.cfg, web=msgspec.structs.replace(hub.cfg.web, kiosk_summary_s=0.2))
    runner = asyncio.create_task(hub.kiosk.run())
    try:
        await hub.writer.submit(IdentifyIn("room-1", PATIENT))
        await hub.writer.submit(ReadingIn("room-1", "bp-1", bp(118, 76)))
        await wait_until(lambda: hub.reader.current_session("room-1") is None)
        [s] = hub.reader.sessions_since(0)
        assert s["close_reason"] == "finished" and s["readings"] == 1
    finally:
        hub.kiosk.stop()
        runner.cancel()


async def test_page_source_and_event_stream_hold_nothing_after_close(web_hub: tuple[Any, Any]) -> None:
    hub, app = web_hub
    async with serve(app) as url, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{url}/kiosk/room-1") as r:
            page = await r.text()
        assert r.status == 200 and 'data-events="/kiosk/room-1/events?lang=zh-CN"' in page
        assert "请将身份证放在读卡器上" in page
        events: list[dict[str, str]] = []

        async def read_stream() -> None:
            async with http.get(f"{url}/kiosk/room-1/events") as stream:
                name = ""
                async for raw in stream.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        name = line[7:]
                    elif line.startswith("data: ") and name == "state":
                        events.append(json.loads(line[6:]))
            # the stream ended by itself once the session closed

        reader = asyncio.create_task(read_stream())
        await wait_until(lambda: bool(events))
        await hub.writer.submit(IdentifyIn("room-1", PATIENT))
        await wait_until(lambda: events[-1]["phase"] == "identified")
        await hub.writer.submit(ReadingIn("room-1", "bp-1", bp(118, 76)))
        await wait_until(lambda: events[-1]["phase"] == "summary")
        token = csrf_from(events[-1]["html"])
        async with http.post(f"{url}/kiosk/room-1/finish", allow_redirects=False) as r:
            assert r.status == 403  # the finish button carries the CSRF token
        assert hub.reader.current_session("room-1") is not None
        async with http.post(f"{url}/kiosk/room-1/finish", data={"csrf_token": token}, allow_redirects=False) as r:
            assert r.status == 303
        await asyncio.wait_for(reader, HANG_S)
        assert hub.reader.sessions_since(0)[0]["close_reason"] == "finished"
        assert [e["phase"] for e in events] == ["idle", "identified", "summary", "idle"]
        assert all(NID not in e["html"] for e in events) and "王*" in events[1]["html"]
        assert "王" not in events[-1]["html"] and "118" not in events[-1]["html"]
        async with http.get(f"{url}/kiosk/room-1") as r:
            assert "王" not in await r.text()
        async with http.get(f"{url}/kiosk/nowhere") as r:
            assert r.status == 404
