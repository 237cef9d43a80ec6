"""The message browser pages over a seeded cloud: list and filters, an ID number only by POST,
the detail view, send again with CSRF and roles, audit of patient searches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.support import make_cloud
from tests.cloud.web.support import NID, WEB, csrf_from, running, seed, sign_in


@pytest.fixture
async def seeded(tmp_path: Path) -> AsyncIterator[Any]:
    cfg, keys = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    async with running(cfg) as cloud:
        facts = await seed(cloud, keys)
        secret = await cloud.user("ops", "integration")
        staff = await cloud.user("nurse", "clinic_staff")
        async with cloud.client() as c:
            await sign_in(c, "ops", secret)
            yield cloud, c, facts, staff


async def test_the_list_shows_states_in_words_and_filters(seeded: Any) -> None:
    _, c, _, _ = seeded
    html = (await c.get("/ui/dashboard/messages")).text
    assert "消息浏览" in html and "MSG0003" in html and "MSG0001" in html
    assert "已应答错误" in html and "无法识别的数据" in html and "已处理" in html  # states in zh-CN words
    assert "<details><summary>详情</summary>" in html and "PID-3 missing" in html  # raw reason behind 详情
    only = (await c.get("/ui/dashboard/messages?state=error")).text
    assert "MSG0003" in only and "MSG0001" not in only
    en = (await c.get("/ui/dashboard/messages?state=error&lang=en")).text
    assert "answered error" in en and "Message browser" in en
    dead = (await c.get("/ui/dashboard/messages?source=hl7_out&state=dead&lang=zh-CN")).text
    assert "MCHV0000000000" in dead and "死信" in dead and "重新发送所选死信" in dead


async def test_an_id_number_is_searched_only_by_post_and_audited(seeded: Any) -> None:
    cloud, c, _, _ = seeded
    r = await c.get(f"/ui/dashboard/messages?national_id={NID}")
    assert r.status_code == 400 and NID not in r.text
    page = (await c.get("/ui/dashboard/messages")).text
    r = await c.post("/ui/dashboard/messages", data={"csrf_token": csrf_from(page), "national_id": NID,
                                                     "source": "hl7_in"})
    assert r.status_code == 200 and NID not in r.text and "没有符合条件的消息" in r.text
    audit = await cloud.sql("SELECT action FROM audit_log WHERE action = 'view.messages'")
    assert len(audit) == 1
    r = await c.post("/ui/dashboard/messages", data={"national_id": NID, "source": "hl7_in"})  # no CSRF token
    assert r.status_code == 403


async def test_detail_and_send_again(seeded: Any) -> None:
    cloud, c, facts, _ = seeded
    html = (await c.get("/ui/dashboard/messages/hl7_in/u2")).text
    assert "原始消息" in html and "MSH|..." in html and "发回的应答" in html and "缺少必填段或字段" not in html
    assert (await cloud.sql("SELECT COUNT(*) AS n FROM audit_log WHERE action = 'hl7.view'"))[0]["n"] == 1
    token = csrf_from(html)
    r = await c.post("/ui/dashboard/messages/send-again", data={
        "csrf_token": token, "source": "hl7_out", "ref": [str(facts["his_id"])],
        "back": "/ui/dashboard/messages?source=hl7_out"})
    assert r.status_code == 303 and "done=1" in r.headers["location"]
    status = await cloud.sql("SELECT status FROM outbox WHERE id = $1", facts["his_id"])
    assert status[0]["status"] == "pending"
    r = await c.post("/ui/dashboard/messages/send-again", data={
        "csrf_token": token, "source": "hl7_in", "ref": ["u2"], "back": "https://evil.example/"})
    location = r.headers["location"]
    assert location.startswith("/ui/dashboard/messages?") and "error=" in location  # 'MSH|...' is still refused
    assert "still+refused" in location or "still%20refused" in location
    follow = (await c.get(location)).text
    assert "still refused" in follow
    outbound = (await c.get(f"/ui/dashboard/messages/hl7_out/{facts['his_id']}")).text
    assert "MCHV" in outbound and "&#34;hub_id&#34;: &#34;H1&#34;" in outbound  # escaped


async def test_clinic_staff_may_not_use_it(seeded: Any, tmp_path: Path) -> None:
    cloud, _, _, staff = seeded
    async with cloud.client() as c:
        await sign_in(c, "nurse", staff)
        r = await c.get("/ui/dashboard/messages")
        assert r.status_code in (302, 303, 403)
