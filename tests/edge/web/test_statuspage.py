"""Status page: PIN sign-in with lockout, masked and watermarked patient data, audited views, binding."""

from __future__ import annotations

from typing import Any

import pytest

from edge.store.ledger import IdentifyIn
from protocol.model import Subject
from tests.edge.hubkit import add_readings, wait_until
from tests.edge.web.conftest import PIN, client, csrf_from, sign_in
from tests.support.waiting import HANG_S

NID = "11010519491231002X"


async def test_pin_sign_in_and_lockout(web_hub: tuple[Any, Any]) -> None:
    hub, app = web_hub
    async with client(app) as c:
        page = await c.get("/login")
        assert "密码或 PIN 码" in page.text
        token = csrf_from(page.text)
        codes = [(await c.post("/login", data={"user": "nurse", "password": "000000", "csrf_token": token}))
                 .status_code for _ in range(5)]
        assert codes == [401] * 5
        r = await c.post("/login", data={"user": "nurse", "password": PIN, "csrf_token": token})
        assert r.status_code == 429 and "尝试次数过多" in r.text  # locked: even the right PIN waits
    kinds = [a["kind"] for a in hub.reader.audit(20)]
    assert kinds.count("login_failed") == 5 and "login_locked" in kinds


async def test_status_page_shows_masked_sessions_and_binds_a_reading(web_hub: tuple[Any, Any]) -> None:
    hub, app = web_hub
    await add_readings(hub, range(1, 3))  # no session: unbound
    session_id = await hub.writer.submit(IdentifyIn("room-1", Subject(national_id=NID, name="王芳", source="idcard")))
    async with client(app) as c:
        token = await sign_in(c)
        r = await c.get("/?lang=en")
        html = r.text
        assert r.status_code == 200 and "王*" in html and "1101**********002X" in html
        assert NID not in html and "王芳" not in html
        assert 'class="watermark"' in html and "nurse ·" in html
        assert "Readings not bound to a patient (2)" in html
        assert r.headers["set-cookie"].startswith("lang=") or "mchub_session" in c.cookies
        uid = html.split('name="uid" value="')[1].split('"')[0]
        r = await c.post("/readings/bind", data={"uid": uid, "session_id": session_id, "csrf_token": token})
        assert r.status_code == 303
        html = (await c.get("/?lang=en")).text
        assert "Bound: the reading syncs" in html and "Readings not bound to a patient (1)" in html
        r = await c.post("/readings/bind", data={"uid": uid, "session_id": session_id, "csrf_token": token})
        html = (await c.get("/?lang=en")).text
        assert "already bound" in html  # a one-time message from the session, not from the URL
        r = await c.post("/sessions/open", data={"station_id": "room-2", "name": "李四", "national_id": "123",
                                                 "csrf_token": token})
        html = (await c.get("/?lang=zh-CN")).text  # what it means in the reader's language, raw text behind 详情
        assert "身份证号不正确" in html and "<summary>详情</summary><code>an ID number has 18 characters" in html
        r = await c.post("/logout", data={"csrf_token": token})
        assert (await c.get("/")).status_code == 303
    audit = hub.reader.audit(50)
    assert any(a["kind"] == "bind" and a["actor"] == "nurse" for a in audit)
    # four loads of the page showing the same visit in one sign-in: one view audited, not one per load
    assert sum(a["kind"] == "view" and a["actor"] == "nurse" for a in audit) == 1
    bound = hub.reader.records(1, 100)
    assert [type(r).__name__ for r in bound][-1] == "ReadingBound"


async def test_cookies_are_httponly_samesite_and_secure_by_default(web_hub: tuple[Any, Any]) -> None:
    hub, app = web_hub
    async with client(app) as c:
        cookie = (await c.get("/login")).headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Secure" not in cookie  # secure_cookie = false
    import dataclasses

    import msgspec

    from edge.web.app import build_app

    hub.cfg = dataclasses.replace(hub.cfg, web=msgspec.structs.replace(hub.cfg.web, secure_cookie=True))

    async with client(build_app(hub)) as c:
        assert "Secure" in (await c.get("/login")).headers["set-cookie"]


async def test_live_stream_sends_values_and_a_refresh_when_records_are_stored(web_hub: tuple[Any, Any]) -> None:
    """The page never reloads itself: the stream says "refresh" and the page fetches /lists."""
    import asyncio

    import aiohttp

    from tests.support.asgi import serve

    hub, app = web_hub
    async with serve(app) as url, aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get(f"{url}/login") as r:
            token = csrf_from(await r.text())
        async with http.post(f"{url}/login", data={"user": "nurse", "password": PIN, "csrf_token": token}) as r:
            assert r.status == 200  # followed the redirect to the status page
        seen: list[str] = []
        async with http.get(f"{url}/events?lang=en") as stream:
            async def read() -> None:
                async for raw in stream.content:
                    seen.append(raw.decode().rstrip("\n"))
                    if seen[-1] == "data: refresh":
                        return

            reader = asyncio.create_task(read())
            await wait_until(lambda: "event: queue_depth" in seen)
            await add_readings(hub, range(1, 3))  # a new unbound reading changes the lists
            await asyncio.wait_for(reader, HANG_S)
        async with http.get(f"{url}/lists?lang=en") as r:
            lists = await r.text()
    assert r.headers["cache-control"] == "no-store" and "<html" not in lists
    assert lists.count("data-unbound=") == 2 and 'id="needs-action" data-swap' in lists
    text = "\n".join(seen)
    assert "event: dev-bp-1-state" in text and "disconnected" in text and "event: cloud" in text
    assert "王" not in text and NID not in text


async def test_severe_blood_pressure_in_pregnancy_raises_an_alarm_and_45_weeks_is_refused(
        web_hub: tuple[Any, Any]) -> None:
    """160/102 at 13 weeks is the severe range at any gestational age: an alarm on the status page."""
    from drivers.base import Measurement
    from edge.store.ledger import ReadingIn
    from protocol import codes
    from protocol.model import Observation

    hub, app = web_hub
    await hub.writer.submit(IdentifyIn("room-1", Subject(national_id=NID, name="王芳", source="staff"), 13))
    await hub.writer.submit(ReadingIn("room-1", "bp-1", Measurement(kind="blood_pressure", observations=(
        Observation(code=codes.SYSTOLIC, value=160, unit="mm[Hg]"),
        Observation(code=codes.DIASTOLIC, value=102, unit="mm[Hg]")))))
    async with client(app) as c:
        token = await sign_in(c)
        html = (await c.get("/?lang=en")).text
        assert 'id="urgent"' in html and "160/102" in html and "13 weeks pregnant" in html and "王*" in html
        assert "王芳" not in html
        await c.post("/sessions/open", data={"station_id": "room-2", "name": "李四", "pregnant_weeks": "45",
                                             "csrf_token": token})
        assert "not plausible" in (await c.get("/?lang=en")).text
    assert hub.sessions.open["room-1"].pregnant_weeks == 13 and "room-2" not in hub.sessions.open

async def test_a_fever_in_a_baby_under_3_months_raises_the_alarm(web_hub: tuple[Any, Any]) -> None:
    """NICE NG143 red: under 3 months and >= 38 ℃ is urgent, on the kiosk and on the status page."""
    import datetime as dt

    from drivers.base import Measurement
    from edge.sessions import local_day
    from edge.store.ledger import ReadingIn
    from protocol import codes, idnum
    from protocol.ids import now_ms
    from protocol.model import Observation

    hub, app = web_hub
    born = (local_day(now_ms()) - dt.timedelta(days=50)).strftime("%Y%m%d")
    baby = f"110105{born}001"
    baby += idnum.check_character(baby)
    await hub.writer.submit(IdentifyIn("room-1", Subject(national_id=baby, name="张宝宝", source="staff")))
    await hub.writer.submit(ReadingIn("room-1", "bp-1", Measurement(kind="temperature", observations=(
        Observation(code=codes.TEMPERATURE, value=38.2, unit="Cel"),))))
    async with client(app) as c:
        await sign_in(c)
        html = (await c.get("/?lang=en")).text
    assert 'id="urgent"' in html and "38.2" in html and "fever in a baby under 3 months" in html


async def test_a_configured_device_that_is_not_connected_raises_the_alarm(web_hub: tuple[Any, Any]) -> None:
    """Issue 19 finding 1: the page showed ✘ but no alarm. bp-1 points at a port nobody listens on."""
    hub, app = web_hub
    async with client(app) as c:
        await sign_in(c)
        html = (await c.get("/?lang=en")).text
        zh = (await c.get("/?lang=zh-CN")).text
    assert 'role="alert" data-live="devices_down">configured but not connected: bp-1 (血压 1)<' in html
    assert "已配置但未连接: bp-1 (血压 1)" in zh
    needs = html.split('id="needs-action"')[1].split("</section>")[0]  # first on the page, by station name
    assert html.index('id="needs-action"') < html.index('id="visits"') < html.index('id="devices"')
    assert 'id="devices-down">configured but not connected: bp-1 (血压 1)' in needs
    assert 'data-live="broker">not configured<' in html  # no [mqtt]: not a red light
    assert hub.config_status()["state"] == "local" and 'data-live="config"' not in html  # hub.toml only


async def test_bind_offers_the_stations_nearest_visits_and_a_nurse_ends_a_visit(
        web_hub: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 20: the bind list offered every visit of the day; no way to end a visit; the activity log
    filled with the page's own views. Issue 21: every reload of the page was audited."""
    import re

    from edge.web import statuspage

    hub, app = web_hub
    room1 = [await hub.writer.submit(IdentifyIn("room-1", Subject(name=f"张{i}", source="staff"))) for i in range(7)]
    await hub.close_session("room-1", "staff")
    await add_readings(hub, range(1, 2))  # nobody at room-1 now: unbound
    room2 = await hub.writer.submit(IdentifyIn("room-2", Subject(national_id=NID, name="王芳", source="idcard")))
    async with client(app) as c:
        token = await sign_in(c)
        html = (await c.get("/?lang=en")).text
        unbound = html.split("data-unbound=")[1].split("</tr>")[0]
        offered = re.findall(r'<option value="([^"]+)"', unbound)
        assert offered == room1[::-1][:5]  # that station's, nearest in time first, five at most
        visits = html.split('id="visits"')[1].split("</table>")[0]
        assert room2 not in offered and "<td>血压 1</td>" in visits and ">room-1<" not in html  # station names
        assert "End visit" in html and html.count('action="/sessions/close"') == 1  # only the open visit
        r = await c.post("/sessions/close", data={"station_id": "room-2", "session_id": room2, "csrf_token": token})
        assert r.status_code == 303
        html = (await c.get("/?lang=en")).text
        assert "Visit ended" in html and hub.reader.current_session("room-2") is None
        assert "ended a visit" in html.split('id="actions"')[1]
        r = await c.post("/sessions/close", data={"station_id": "room-2", "session_id": room2, "csrf_token": token})
        assert "that visit has already ended" in (await c.get("/?lang=en")).text
        views = sum(a["kind"] == "view" for a in hub.reader.audit(200))
        for _ in range(3):  # live refreshes showing nothing new are not audited again
            assert (await c.get("/lists")).status_code == 200
        assert sum(a["kind"] == "view" for a in hub.reader.audit(200)) == views
        await hub.writer.submit(IdentifyIn("room-1", Subject(name="赵六", source="staff")))
        await c.get("/lists")  # a new visit shown: audited once
        assert sum(a["kind"] == "view" for a in hub.reader.audit(200)) == views + 1
        actions = (await c.get("/?lang=en")).text.split('id="actions"')[1]  # the same visits: not audited again
        assert sum(a["kind"] == "view" for a in hub.reader.audit(200)) == views + 1
        monkeypatch.setattr(statuspage, "VIEW_AUDIT_EVERY_S", 0.0)  # the window has passed
        await c.get("/lists")  # the lists alone never for time: only for visits not shown before
        assert sum(a["kind"] == "view" for a in hub.reader.audit(200)) == views + 1
        await c.get("/")
        assert sum(a["kind"] == "view" for a in hub.reader.audit(200)) == views + 2
        assert "viewed" not in actions and "status page" not in actions
    [closed] = [s for s in hub.reader.sessions_since(0) if s["session_id"] == room2]
    assert closed["close_reason"] == "staff"
    assert any(a["kind"] == "close" and a["actor"] == "nurse" and room2 in a["detail"] for a in hub.reader.audit(50))
