"""The cloud pages rendered in zh-CN carry no untranslated English.

:mod:`tests.webui.test_glossary` checks every catalog text; this renders whole pages as a
clinic's browser gets them — a received lab message's detail (field tree, ACK, results), the
work list, the devices page — and runs the same checker over the text people read. What is
data, not wording, is marked so in the page and skipped: ``translate="no"`` (HL7 values, hub
and device ids, the sender's own result names), ``lang="en"`` (the standard's English field
names shown as secondary text), ``<pre>``/``<code>`` (raw messages, codes behind 详情).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.support import make_cloud
from tests.cloud.web.support import WEB, running, seed, sign_in
from tests.webui.test_glossary import english_words

#: a lab message with a code the tables know (718-7), one they know by its LIS abbreviation (GLU) and one
#: they lack (FER: the sender's "Ferritin" is shown as sent)
LAB = ("MSH|^~\\&|LIS|妇幼保健院|MCHUB|CLOUD|20261206093000+0800||ORU^R01^ORU_R01|LIS00000902|P|2.5.1"
       "||||||UNICODE UTF-8\r"
       "PID|1||M900002^^^HOSP^MR||王秀英||19491231|F\r"
       "OBR|1|ORD902|FIL902|CBC^血常规^L|||20261206080000+0800\r"
       "OBX|1|NM|718-7^Hb^LN||9.8|g/dL|11.5-15.0||||F\r"
       "OBX|2|NM|GLU^Glucose^L||5.4|mmol/L|3.9-6.1||||F\r"
       "OBX|3|NM|FER^Ferritin^L||80|ug/L|13-150||||F\r").encode()
SKIP = {"script", "style", "pre", "code", "textarea"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Text(HTMLParser):
    """The text of ``<main>`` people read as wording (data marked as such left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[bool] = []  #: per open element: is it (or an ancestor) data?
        self.inside = False
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "main":
            self.inside = True
        if tag in VOID:
            return
        a = dict(attrs)
        data = tag in SKIP or a.get("translate") == "no" or a.get("lang") == "en"
        self.stack.append(data or (bool(self.stack) and self.stack[-1]))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if tag == "main":
            self.inside = False
        if self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if self.inside and not (self.stack and self.stack[-1]):
            self.parts.append(data)


def english_on(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return english_words(" ".join(parser.parts))


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Any]:
    from cloud.integration.inbound import Hl7Processor
    from cloud.mllp.db_store import Hl7Store
    from cloud.mllp.store import InboundMeta
    from protocol.ids import now_ms

    cfg, keys = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    async with running(cfg) as c:
        await seed(c, keys)
        store = Hl7Store(c.state.db, c.state.ingestor.at_rest)
        try:
            await store.store(LAB, InboundMeta(received_at=now_ms(), peer="10.0.0.5", status="accepted",
                                               ack_code="AA", sender="LIS|妇幼保健院", control_id="LIS00000902",
                                               message_type="ORU^R01"))
            await Hl7Processor(c.state.db, store, c.state.ingestor.at_rest).run_once()
        finally:
            await store.close()
        yield c


def test_the_checker_skips_data_and_finds_wording() -> None:
    html = ('<main><p>Sending Facility 发送机构</p><td translate="no">LIS^LAB</td><span lang="en">Patient Name'
            '</span><pre>MSH|^~</pre><br><p>患者</p></main><footer>English</footer>')
    assert english_on(html) == ["Sending", "Facility"]


async def test_message_detail_work_list_and_devices_pages_have_no_untranslated_english(cloud: Any) -> None:
    ops, admin = await cloud.user("ops", "integration"), await cloud.user("root", "admin")
    uid = (await cloud.sql("SELECT uid FROM hl7_inbound WHERE control_id = 'LIS00000902'"))[0]["uid"]
    async with cloud.client() as c:
        await sign_in(c, "ops", ops)
        detail = (await c.get(f"/ui/dashboard/messages/hl7_in/{uid}?lang=zh-CN")).text
        assert "患者姓名" in detail and "观察值" in detail and "消息控制ID" in detail  # field names in zh-CN first
        assert '<span class="muted small" lang="en">Patient Name</span>' in detail  # the English one beside
        assert "血红蛋白" in detail and "葡萄糖" in detail and '<span translate="no">Ferritin</span>' in detail
        assert "<code>L:FER</code>" in detail  # the code behind 详情, never run together with the name
        pages = {"message detail": detail,
                 "work list": (await c.get("/ui/dashboard/unmatched?lang=zh-CN")).text,
                 "message list": (await c.get("/ui/dashboard/messages?lang=zh-CN")).text}
        en = (await c.get(f"/ui/dashboard/messages/hl7_in/{uid}?lang=en")).text
        assert '<td class="field-name" lang="en">Patient Name</td>' in en and "患者姓名" not in en
        assert ">Glucose<" in en.replace("\n", "")
    async with cloud.client() as c:
        await sign_in(c, "root", admin)
        pages["devices"] = (await c.get("/ui/admin/devices?lang=zh-CN")).text
    problems = {name: english_on(html) for name, html in pages.items()}
    assert not any(problems.values()), problems


async def test_every_other_page_has_no_untranslated_english(cloud: Any) -> None:
    """Issue 20's acceptance: every page in zh-CN, not only the new ones — the sign-in page, the dashboard,
    a search, each register, and every page of the admin console."""
    from cloud.mch.queries import REGISTERS

    pages: dict[str, str] = {}
    async with cloud.client() as c:
        pages["sign-in"] = (await c.get("/ui/login?lang=zh-CN")).text
    ops, admin = await cloud.user("ops", "integration"), await cloud.user("root", "admin")
    async with cloud.client() as c:
        await sign_in(c, "ops", ops)
        pages["dashboard"] = (await c.get("/ui/dashboard?lang=zh-CN")).text
        for name in REGISTERS:
            r = await c.get("/ui/registers", params={"name": name, "start": "2026-12-01", "end": "2026-12-07",
                                                     "lang": "zh-CN"})
            assert r.status_code == 200, (name, r.status_code)
            pages[f"register {name}"] = r.text
    async with cloud.client() as c:
        await sign_in(c, "root", admin)
        for path in ("/ui/admin", "/ui/admin/users", "/ui/admin/audit", "/ui/admin/dicom-senders", "/ui/admin/devices"):
            r = await c.get(path, params={"lang": "zh-CN"})
            assert r.status_code == 200, (path, r.status_code)
            pages[path] = r.text
    assert all("<main" in html for html in pages.values()), [k for k, v in pages.items() if "<main" not in v]
    problems = {name: words for name, html in pages.items() if (words := english_on(html))}
    assert not problems, problems
