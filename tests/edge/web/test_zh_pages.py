"""Every hub page state a nurse or patient can reach shows no untranslated English in zh-CN.

The catalog test (tests/webui/test_glossary.py) checks each message; this one checks what the
pages show once data is filled in: the kiosk in each phase, and the status page empty, busy
(visits, an urgent blood pressure, unbound readings, the activity log) and with an error of
each class: the network (sync cannot reach the cloud), a device frame, an ID number, and a
record the cloud refused. A raw error text is allowed only inside ``<details>`` behind 详情,
and only next to its meaning in words; the staff user's name is data and is left out.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

from drivers.errors import FrameError
from edge.store import reader as q
from edge.store.ledger import IdentifyIn, ReadingIn
from edge.supervisor import DeviceSink
from protocol.ids import now_ms
from protocol.model import Subject
from tests.edge.hubkit import add_readings, wait_until
from tests.edge.web.conftest import client, sign_in
from tests.edge.web.test_kiosk import bp, cuff
from tests.webui.test_glossary import english_words

NID = "11010519491231002X"
USER = "nurse"  #: the staff member's name: data, shown as typed


class _Visible(HTMLParser):
    """Text a reader sees (and attribute text read aloud or shown: placeholder, aria-label, title, alt);
    raw details (``<code>`` inside ``<details>``) apart."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.raw: list[str] = []
        self._skip = 0
        self._details = 0
        self._code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "title"):
            self._skip += 1
        self._details += tag == "details"
        self._code += tag == "code"
        self.text += [v for k, v in attrs if k in ("placeholder", "aria-label", "title", "alt") and v]

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "title"):
            self._skip -= 1
        self._details -= tag == "details"
        self._code -= tag == "code"

    def handle_data(self, data: str) -> None:
        if self._skip or not data.strip():
            return
        if self._code:
            assert self._details, f"raw text outside <details>: {data!r}"
            self.raw.append(data)
        else:
            self.text.append(data)


def untranslated(html: str) -> list[str]:
    """English words a zh-CN reader sees on the page (raw details behind 详情 excepted)."""
    seen = _Visible()
    seen.feed(html)
    words = english_words(re.sub(rf"\b{USER}\b", " ", " ".join(seen.text)))
    return sorted(set(words))


async def test_kiosk_phases_show_no_english_in_zh_cn(web_hub: tuple[Any, Any]) -> None:
    hub, _ = web_hub
    kiosk, shown = hub.kiosk, {}
    shown["idle"] = kiosk.fragment(await kiosk.state("room-1"), "room-1", "zh-CN", "tok")
    await hub.writer.submit(IdentifyIn("room-1", Subject(national_id=NID, name="王芳", sex="2", source="idcard")))
    shown["identified"] = kiosk.fragment(await kiosk.state("room-1"), "room-1", "zh-CN", "tok")
    hub._live("room-1", cuff(143))
    shown["measuring"] = kiosk.fragment(await kiosk.state("room-1"), "room-1", "zh-CN", "tok")
    await hub.writer.submit(ReadingIn("room-1", "bp-1", bp(145, 85)))
    st = await kiosk.state("room-1")
    assert st["phase"] == "summary"
    shown["summary"] = kiosk.fragment(st, "room-1", "zh-CN", "tok")
    async with client(web_hub[1]) as c:
        shown["page"] = (await c.get("/kiosk/room-1?lang=zh-CN")).text
        shown["unknown station"] = (await c.get("/kiosk/nowhere?lang=zh-CN")).text
        shown["login"] = (await c.get("/login?lang=zh-CN")).text
    assert all(f'data-phase="{phase}"' in shown[phase] for phase in ("idle", "identified", "measuring", "summary"))
    problems = {phase: words for phase, html in shown.items() if (words := untranslated(html))}
    assert not problems, problems


async def test_status_page_states_show_no_english_in_zh_cn(web_hub: tuple[Any, Any], refcloud: Any) -> None:
    hub, app = web_hub
    shown: dict[str, str] = {}
    async with client(app) as c:
        token = await sign_in(c, USER)
        shown["empty"] = (await c.get("/?lang=zh-CN")).text

        # busy: visits with values, an urgent blood pressure, readings nobody was identified for
        await hub.writer.submit(IdentifyIn("room-1", Subject(national_id=NID, name="王芳", source="idcard")))
        await hub.writer.submit(ReadingIn("room-1", "bp-1", bp(186, 124)))
        await hub.close_session("room-1", "finished")
        seqs = await add_readings(hub, range(1, 4))
        shown["busy"] = (await c.get("/?lang=zh-CN")).text
        shown["lists"] = (await c.get("/lists?lang=zh-CN")).text

        # the network: the cloud cannot be reached
        refcloud.down = True
        await add_readings(hub, range(10, 12))
        await wait_until(lambda: bool(hub.sync and hub.sync.last_error))
        shown["network error"] = (await c.get("/?lang=zh-CN")).text

        # a device frame that could not be read
        device = next(d for s in hub.cfg.stations for d in s.devices if d.id == "bp-1")
        sup = hub.supervisor
        DeviceSink(device, sup.health["bp-1"], sup.submit, sup.store_frame_error, sup.live, sup.simulated).frame_error(
            FrameError("bad test line: checksum 0x3f, expected 0x41", b"R 1 x")
        )
        shown["frame error"] = (await c.get("/?lang=zh-CN")).text

        # an ID number that is not one
        await c.post(
            "/sessions/open", data={"station_id": "room-2", "name": "李四", "national_id": "123", "csrf_token": token}
        )
        shown["id number error"] = (await c.get("/?lang=zh-CN")).text

        # a record the cloud refused
        await hub.writer.call(q.store_ack(seqs[0], b"ack", now_ms(), ((seqs[0], "unknown_code"),)))
        shown["refused record"] = (await c.get("/?lang=zh-CN")).text
        await c.post("/dead-letters/dismiss", data={"seq": str(seqs[0]), "csrf_token": token})
        shown["after dismiss (activity log)"] = (await c.get("/?lang=zh-CN")).text
    reached = {
        "busy": 'id="urgent"',
        "network error": "等待重试",
        "frame error": "有数据帧无法读取",
        "id number error": "身份证号不正确",
        "refused record": 'id="dead-letter-alarm"',
        "after dismiss (activity log)": "忽略被拒收的记录",
    }
    assert not [state for state, mark in reached.items() if mark not in shown[state]], "a state was not reached"
    assert "云端" in shown["refused record"].split('id="actions"')[1]  # the cloud, named in the reader's language
    problems = {state: words for state, html in shown.items() if (words := untranslated(html))}
    assert not problems, problems
