"""The unmatched work list (issue 20): whom a waiting result names, what it says, who it may be; match by
a click (CSRF, role-checked, audited), undo within the sign-in (audited); the patient page with her
masked name, sex from the ID number, flags and reference ranges. On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.support import make_cloud
from tests.cloud.web.support import NID, WEB, Cloud, csrf, csrf_from, running, seed_worklist, sign_in


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Cloud, Any, dict[str, int]]]:
    """A cloud with the work-list seed, and an integration user ``ops`` signed in."""
    url = f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}" if request.param == "sqlite" else str(
        request.getfixturevalue("pg_dsn"))
    cfg, _ = make_cloud(tmp_path / "cloud", url, extra_toml=WEB)
    async with running(cfg) as cloud:
        ids = await seed_worklist(cloud)
        secret = await cloud.user("ops", "integration")
        async with cloud.client() as c:
            await sign_in(c, "ops", secret)
            yield cloud, c, ids


def _item_html(html: str, item: int) -> str:
    start = html.index(f'id="item-{item}"')
    return html[start:html.index("</section>", start)]


async def test_each_row_says_whom_the_result_names_what_it_says_and_who_she_may_be(world: Any) -> None:
    cloud, c, ids = world
    html = (await c.get("/ui/dashboard/unmatched")).text
    row = _item_html(html, ids["item"])
    assert "王**" in row and "1949-12-31" in row and "女" in row and "王秀英" not in row  # masked name
    assert "血红蛋白" in row and '9.8 <span class="unit" translate="no">g/dL</span>' in row
    assert "偏低 ↓" in row and "参考范围 11.5-15.0" in row
    assert "白细胞计数" in row and "正常" in row and "hl7 718-7" not in row
    offered = [int(s) for s in re.findall(r'name="subject_id" value="(\d+)"', row)]
    assert offered == [ids["her"], ids["similar"]]  # same birth date and sex, likeliest first; not the man
    assert "1101**********002X" in row and NID not in html  # her ID number, masked
    assert 'class="watermark"' in html
    views = await cloud.sql("SELECT detail FROM audit_log WHERE action = 'view.unmatched' AND actor = 'web:ops'")
    assert len(views) == 1
    en = _item_html((await c.get("/ui/dashboard/unmatched?lang=en")).text, ids["item"])
    assert "Hemoglobin" in en and "low ↓" in en and "range 11.5-15.0" in en and "female" in en


async def test_match_by_click_then_undo_both_audited_and_csrf_checked(world: Any) -> None:
    cloud, c, ids = world
    item, her = ids["item"], ids["her"]
    token = csrf_from((await c.get("/ui/dashboard/unmatched")).text)
    form = {"subject_id": str(her), "csrf_token": token}
    assert (await c.post(f"/ui/dashboard/unmatched/{item}/resolve", data={"subject_id": str(her)})).status_code == 403
    r = await c.post(f"/ui/dashboard/unmatched/{item}/resolve", data=form)
    assert r.status_code == 303 and r.headers["location"].endswith(f"matched={item}#mine")
    assert {r["subject_id"] for r in await cloud.sql("SELECT subject_id FROM results WHERE origin LIKE 'hl7:%'")} == {
        her}
    page = (await c.get(r.headers["location"])).text
    assert f'id="item-{item}"' not in page and f'id="matched-{item}"' in page and "撤销" in page

    undo = await c.post(f"/ui/dashboard/unmatched/{item}/undo", data={"csrf_token": token})
    assert undo.headers["location"].endswith(f"undone={item}")
    assert {r["subject_id"] for r in await cloud.sql("SELECT subject_id FROM results WHERE origin LIKE 'hl7:%'")} == {
        None}
    row = (await cloud.sql("SELECT status, subject_id, resolved_by FROM unmatched WHERE id = $1", item))[0]
    assert (row["status"], row["subject_id"], row["resolved_by"]) == ("waiting", None, None)
    trail = await cloud.sql("SELECT action, actor, subject_id FROM audit_log WHERE action LIKE 'unmatched.%' "
                            "ORDER BY id")
    assert [(a["action"], a["actor"], a["subject_id"]) for a in trail] == [
        ("unmatched.resolve", "web:ops", her), ("unmatched.undo", "web:ops", her)]
    again = await c.post(f"/ui/dashboard/unmatched/{item}/undo", data={"csrf_token": token})
    assert "error=" in again.headers["location"]  # nothing of hers left to undo
    assert f'id="item-{item}"' in (await c.get("/ui/dashboard/unmatched")).text  # waiting again


async def test_only_your_own_match_of_this_sign_in_can_be_undone(world: Any) -> None:
    cloud, c, ids = world
    item = ids["item"]
    token = csrf_from((await c.get("/ui/dashboard/unmatched")).text)
    await c.post(f"/ui/dashboard/unmatched/{item}/resolve", data={"subject_id": str(ids["similar"]),
                                                                 "csrf_token": token})
    other = await cloud.user("eve", "integration")
    async with cloud.client() as e:
        await sign_in(e, "eve", other)
        page = (await e.get("/ui/dashboard/unmatched")).text
        assert f'id="matched-{item}"' not in page
        refused = await e.post(f"/ui/dashboard/unmatched/{item}/undo", data={"csrf_token": csrf_from(page)})
        assert "error=" in refused.headers["location"]
    await cloud.sql("UPDATE unmatched SET resolved_ms = resolved_ms - 86400000 WHERE id = $1", item)  # a day ago
    old = await c.post(f"/ui/dashboard/unmatched/{item}/undo", data={"csrf_token": token})
    assert "error=" in old.headers["location"]  # before this sign-in
    assert (await cloud.sql("SELECT status FROM unmatched WHERE id = $1", item))[0]["status"] == "resolved"
    assert not await cloud.sql("SELECT 1 FROM audit_log WHERE action = 'unmatched.undo'")


async def test_an_auditor_may_not_match(world: Any) -> None:
    cloud, _, ids = world
    secret = await cloud.user("aud", "auditor")
    async with cloud.client() as a:
        await sign_in(a, "aud", secret)
        token = await csrf(a)
        r = await a.post(f"/ui/dashboard/unmatched/{ids['item']}/resolve",
                         data={"subject_id": str(ids["her"]), "csrf_token": token})
        assert r.status_code == 403
    assert (await cloud.sql("SELECT status FROM unmatched WHERE id = $1", ids["item"]))[0]["status"] == "waiting"


async def test_the_patient_page_shows_her_masked_name_sex_from_the_id_number_flags_and_ranges(world: Any) -> None:
    _, c, ids = world
    token = csrf_from((await c.get("/ui/dashboard/unmatched")).text)
    await c.post(f"/ui/dashboard/unmatched/{ids['item']}/resolve", data={"subject_id": str(ids["her"]),
                                                                        "csrf_token": token})
    html = (await c.post("/ui/dashboard/search", data={"q": NID, "csrf_token": token})).text
    patient = html[html.index('class="card patient"'):]
    assert "王**" in patient and "1101**********002X" in patient and "王秀英" not in patient
    assert "性别: 女" in patient and "1949-12-31" in patient  # stored sex unknown: the ID number says female
    assert "血红蛋白" in patient and "偏低 ↓" in patient and "参考范围 11.5-15.0" in patient
