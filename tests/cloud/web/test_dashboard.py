"""The integration dashboard over a seeded fleet: hubs, queues, dead-letter replay, search, work list, events."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud.db.engine import Database
from cloud.records.crypto_at_rest import AtRest
from cloud.users import accounts as users
from cloud.users import totp_enrolment as user_totp
from cloud.web import dashboard, queues, sampler
from cloud.web.dashboard import headline
from protocol.clinical.patient import CHINA
from protocol.ids import now_ms
from tests.cloud.support import make_cloud, serving
from tests.cloud.web.support import NID, PASSWORD, WEB, code, csrf_from, running, seed, sign_in


def chart_data(html: str) -> list[dict[str, Any]]:
    """The charts' data block of a dashboard page."""
    start = html.index('<script type="application/json" id="chart-data">')
    block = html[html.index(">", start) + 1:html.index("</script>", start)]
    data: list[dict[str, Any]] = json.loads(block)
    return data


@pytest.fixture
async def seeded(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg, keys = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    async for x in _seeded(cfg, keys):
        yield x


async def _seeded(cfg: Any, keys: Any):  # type: ignore[no-untyped-def]
    async with running(cfg) as cloud:
        facts = await seed(cloud, keys)
        secret = await cloud.user("ops", "integration")
        async with cloud.client() as c:
            await sign_in(c, "ops", secret)
            yield cloud, c, facts


async def test_overview_shows_hubs_queues_charts_dead_letters_and_the_mllp_log(seeded: Any) -> None:
    cloud, c, _ = seeded
    now = now_ms()
    for minute in range(-4, 2):  # the sampler's minutes around the four frames seeded (now .. now - 3 min)
        await sampler.sample(cloud.state.db, now + minute * 60_000)
    r = await c.get("/ui/dashboard")
    assert r.status_code == 200
    html = r.text
    assert "H1" in html and "H2" in html and "离线" in html and "在线" in html
    assert "240" in html  # H2's backlog
    for title in ("入站同步", "HIS 出站", "妇幼平台上传"):
        assert title in html
    charts = chart_data(html)  # drawn by ECharts in the browser (test_browser_worklist.py)
    assert [c["id"] for c in charts] == ["traffic", "errors", "lag"]
    assert html.count('class="echart" data-chart=') == 3 and "<svg" not in html
    labels = charts[0]["labels"]
    hours = [dt.datetime.fromtimestamp(now / 1000, CHINA) - dt.timedelta(hours=h) for h in range(23, -1, -1)]
    assert labels == [h.strftime("%m-%d %H:00") for h in hours]  # oldest -> newest, China time, 24 h
    hl7_in = dict(zip(labels, charts[0]["series"][1]["data"], strict=True))
    assert hl7_in[labels[-1]] + hl7_in[labels[-2]] == 4  # the four frames seeded a few minutes ago, as sampled
    errors = {s["name"]: s["data"] for s in charts[1]["series"]}
    assert errors["HL7 接收出错"][:-2] == [None] * 22  # no frames, no point (not 0 %)
    assert sum(e or 0 for e in errors["HL7 接收出错"][-2:]) > 0  # MSG0003 was answered AE, one frame was garbage
    assert "MCHV0000000000" in html and ">AE<" in html and "尚未处理" in html  # ACK counts, states in Chinese
    assert "筛查日期晚于上报日期" in html  # the receiver's reason of the dead letter
    assert "mch.upload/case-7" in html and "PID-3 missing" in html and ">AE<" in html
    assert "MCHV0000000000" in html and "AR: PID-3 unknown patient" in html  # HIS dead letter by control id
    assert "1 条结果尚未匹配到患者" in html
    assert 'data-events="/ui/dashboard/events"' in html and 'data-live="outbox-dead"' in html
    en = (await c.get("/ui/dashboard?lang=en")).text
    assert "Inbound sync" in en and "Dead letters" in en and "Replay" in en


async def test_a_large_fleet_lists_problem_hubs_first(seeded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, c, _ = seeded
    monkeypatch.setattr(dashboard, "HUB_ROWS", 1)
    html = (await c.get("/ui/dashboard")).text
    assert "显示 1 / 2 个网关" in html and "<td>H2</td>" in html and "<td>H1</td>" not in html  # offline first
    html = (await c.get("/ui/dashboard?hubs=all")).text
    assert "<td>H1</td>" in html and "显示 1 / 2" not in html


async def test_replay_a_dead_letter_is_audited_and_needs_csrf(seeded: Any) -> None:
    cloud, c, facts = seeded
    page = await c.get("/ui/dashboard")
    token = csrf_from(page.text)
    assert (await c.post("/ui/dashboard/replay", data={"id": str(facts["dead_id"])})).status_code == 403
    r = await c.post("/ui/dashboard/replay", data={"id": str(facts["dead_id"]), "csrf_token": token})
    assert r.status_code == 303 and "replayed=" in r.headers["location"]
    row = (await cloud.sql("SELECT status, attempts FROM outbox WHERE id = $1", facts["dead_id"]))[0]
    assert (row["status"], row["attempts"]) == ("pending", 0)
    audit = await cloud.sql("SELECT actor FROM audit_log WHERE action = 'outbox.replay'")
    assert [a["actor"] for a in audit] == ["web:ops"]
    form = {"id": str(facts["dead_id"]), "csrf_token": token}
    again = await c.post("/ui/dashboard/replay", data=form)
    assert "error=" in again.headers["location"]  # no longer a dead letter
    assert "已重新排队" in (await c.get(r.headers["location"])).text


async def test_search_by_key_hub_batch_and_control_id(seeded: Any) -> None:
    _, c, facts = seeded
    assert "mch.upload/case-8" in (await c.get("/ui/dashboard/search", params={"q": "mch.upload/"})).text
    assert "城关" not in (await c.get("/ui/dashboard/search", params={"q": "H2"})).text
    by_hub = (await c.get("/ui/dashboard/search", params={"q": "H2"})).text
    assert "S1" in by_hub and "240" in by_hub
    batch = (await c.get("/ui/dashboard/search", params={"q": "H1:2"})).text
    assert "ST" in batch and "blood_pressure" in batch and "是" in batch
    assert "PID-3 missing" in (await c.get("/ui/dashboard/search", params={"q": "MSG0003"})).text
    his = (await c.get("/ui/dashboard/search", params={"q": f"MCHV{facts['his_id']:012d}"})).text
    assert "his.vitals/H1/s1" in his and "AR: PID-3 unknown patient" in his
    injection = await c.get("/ui/dashboard/search", params={"q": "' OR 1=1 --"})
    assert injection.status_code == 200 and "没有找到" in injection.text
    assert "没有找到" in (await c.get("/ui/dashboard/search", params={"q": "%"})).text  # LIKE wildcards escaped


async def test_patient_search_is_masked_watermarked_and_audited(seeded: Any) -> None:
    cloud, c, _ = seeded
    form = (await c.get("/ui/dashboard")).text
    assert 'method="post" action="/ui/dashboard/search"' in form  # the ID number travels in the body
    r = await c.post("/ui/dashboard/search", data={"q": NID, "csrf_token": csrf_from(form)})
    assert r.status_code == 200
    assert "1101**********002X" in r.text
    body_without_query = r.text.replace(f'value="{NID}"', "")
    assert NID not in body_without_query  # never in clear, except in the box the user typed it into
    assert 'class="watermark"' in r.text and "ops" in r.text
    assert "H1" in r.text  # her visit
    rows = await cloud.sql("SELECT actor, subject_id FROM audit_log WHERE action = 'view.search.patient'")
    assert len(rows) == 1 and rows[0]["actor"] == "web:ops" and rows[0]["subject_id"] is not None
    assert (await c.post("/ui/dashboard/search", data={"q": NID})).status_code == 403  # CSRF-checked


async def test_an_id_number_in_a_search_url_is_not_searched(seeded: Any) -> None:
    """Issue 17 finding 9: the ID number must not travel in a URL (access/proxy logs, browser history)."""
    cloud, c, _ = seeded
    r = await c.get("/ui/dashboard/search", params={"q": NID})
    assert r.status_code == 400 and NID not in r.text and "身份证号不会放在网址中" in r.text
    assert "1101**********002X" not in r.text  # nothing was looked up
    assert not await cloud.sql("SELECT 1 FROM audit_log WHERE action = 'view.search.patient'")


async def test_unmatched_work_list_is_audited_and_an_item_is_matched_by_id_number(seeded: Any) -> None:
    cloud, c, _ = seeded
    r = await c.get("/ui/dashboard/unmatched")
    assert "LAB0001/1" in r.text and "MRN0042" in r.text and 'class="watermark"' in r.text
    assert await cloud.sql("SELECT 1 FROM audit_log WHERE action = 'view.unmatched' AND actor = 'web:ops'")
    item = (await cloud.sql("SELECT id FROM unmatched"))[0]["id"]
    token = csrf_from(r.text)
    bad = await c.post(f"/ui/dashboard/unmatched/{item}/resolve", data={"national_id": "123", "csrf_token": token})
    assert "error=" in bad.headers["location"]
    ok = await c.post(f"/ui/dashboard/unmatched/{item}/resolve", data={"national_id": NID, "csrf_token": token})
    assert ok.headers["location"].endswith(f"matched={item}#mine")
    row = (await cloud.sql("SELECT status, subject_id, resolved_by FROM unmatched"))[0]
    assert row["status"] == "resolved" and row["subject_id"] is not None and row["resolved_by"] == "web:ops"
    assert await cloud.sql("SELECT 1 FROM audit_log WHERE action = 'unmatched.resolve' AND actor = 'web:ops'")
    assert "MRN0042" not in (await c.get("/ui/dashboard/unmatched")).text


async def test_headline_numbers_and_samples(seeded: Any) -> None:
    cloud, _, _ = seeded
    async with cloud.state.db.transaction() as tx:
        numbers = await headline(tx)
    assert numbers == {"hubs-online": "1/2", "sync-waiting": "240", "outbox-pending": str(
        numbers["outbox-pending"]), "outbox-dead": "2"}
    now = now_ms()
    await sampler.sample(cloud.state.db, now - 3_600_000)
    await sampler.sample(cloud.state.db, now - 3_600_000)  # idempotent within a minute
    await sampler.sample(cloud.state.db, now)
    rows = await cloud.sql("SELECT metric, value FROM dashboard_samples WHERE metric = 'sync.records'")
    assert len(rows) == 2
    # the messages seeded a moment ago count as enqueued in the minute they were created
    await sampler.sample(cloud.state.db, now + 60_000)
    created = await cloud.sql("SELECT metric, SUM(value) AS n FROM dashboard_samples WHERE metric LIKE $1 "
                              "GROUP BY metric ORDER BY metric", "outbox.created.%")
    totals = {r["metric"]: r["n"] for r in created}
    assert totals["outbox.created.mch"] >= 2 and totals["outbox.created.his"] >= 1
    assert queues.queue_of("his.vitals") == "his" and queues.queue_of("visit.closed") == "other"


async def test_live_events_stream_over_real_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, keys = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    monkeypatch.setattr(dashboard, "EVENT_PERIOD_S", 0.1)
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address (127.0.0.1)
    async with serving(cfg) as url, aiohttp.ClientSession(cookie_jar=jar) as http:
        db = await Database.connect(cfg.database.url)
        try:
            await users.create_user(db, "ops", PASSWORD, roles=["integration"], actor="test")
            secret, _ = await user_totp.enable_totp(db, AtRest(keys.at_rest, keys.blind_index), "ops", actor="test")
        finally:
            await db.close()
        async with http.get(f"{url}/ui/login") as r:
            token = csrf_from(await r.text())
        form = {"user": "ops", "password": PASSWORD, "totp": code(secret), "csrf_token": token, "next": "/ui/"}
        async with http.post(f"{url}/ui/login", data=form, allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(f"{url}/ui/dashboard/events") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            seen: dict[str, str] = {}
            event = ""
            async for raw in r.content:
                line = raw.decode().strip()
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    seen[event] = line[6:]
                if len(seen) == 4:
                    break
    assert seen == {"hubs-online": "0/0", "sync-waiting": "0", "outbox-pending": "0", "outbox-dead": "0"}


@pytest.mark.postgres
async def test_on_postgresql(tmp_path: Path, pg_dsn: str) -> None:
    """The same pages on PostgreSQL (every query of the dashboard and the admin console)."""
    cfg, keys = make_cloud(tmp_path / "cloud", pg_dsn, extra_toml=WEB)
    async for cloud, c, facts in _seeded(cfg, keys):
        html = (await c.get("/ui/dashboard")).text
        assert f"MCHV{facts['his_id']:012d}" in html and "PID-3 missing" in html and ">AE<" in html
        assert "筛查日期晚于上报日期" in html and "H2" in html
        token = csrf_from(html)
        for ident in (facts["his_id"], facts["dead_id"]):
            r = await c.post("/ui/dashboard/replay", data={"id": str(ident), "csrf_token": token})
            assert f"replayed={ident}" in r.headers["location"]
        assert {r["status"] for r in await cloud.sql("SELECT status FROM outbox WHERE id = ANY($1::bigint[])",
                                                     [facts["his_id"], facts["dead_id"]])} == {"pending"}
        for q in ("MSG0003", f"MCHV{facts['his_id']:012d}", "H1:2", "mch.upload/", "H2"):
            assert (await c.get("/ui/dashboard/search", params={"q": q})).status_code == 200
        assert "1101**********002X" in (await c.post("/ui/dashboard/search", data={"q": NID, "csrf_token": token})).text
        assert "MRN0042" in (await c.get("/ui/dashboard/unmatched")).text
        await sampler.sample(cloud.state.db)
        admin_secret = await cloud.user("root", "admin")
        async with cloud.client() as a:
            await sign_in(a, "root", admin_secret)
            for path in ("/ui/admin", "/ui/admin/devices", "/ui/admin/users", "/ui/admin/audit?action=outbox.",
                         "/ui/registers"):
                page = await a.get(path)
                assert page.status_code == 200 and "built-in method" not in page.text, path


async def test_records_refused_one_by_one_are_listed_per_hub(seeded: Any) -> None:
    """Issue 17 finding 2: the dashboard shows each hub's refused records, with the reason."""
    from protocol.model import Observation, Reading

    cloud, c, facts = seeded
    assert "没有被拒收的记录" in (await c.get("/ui/dashboard")).text
    h2 = facts["hubs"][1]
    h2.add_visit()
    h2.pending.append(Reading(hub_id="H2", epoch=h2.epoch, seq=h2.next_seq, at=h2.pending[-1].at + 1,
                              device_id="scale", station_id="ST1", kind="body_composition",
                              observations=(Observation(code="mchub-no-such-code", value=1.0, unit="1"),)))
    h2.next_seq += 1
    answer = await cloud.state.ingestor.handle(h2.seal_from(1), peer="127.0.0.1")
    assert answer.status == 200
    html = (await c.get("/ui/dashboard")).text
    assert 'class="refused-hub"><td translate="no">H2</td><td>1</td>' in html
    assert '<td class="">-</td>' in html  # no telemetry from H2 yet: unknown whether staff dealt with it
    async with cloud.state.db.transaction() as tx:  # what cloud/fleet/mqtt.py stores from the hub's telemetry
        await tx.execute("UPDATE hubs SET telemetry = $1 WHERE hub_id = 'H2'",
                         '{"at_ms": 1, "queue_depth": 0, "dead_letters_open": 1, "version": "x"}')
    html = (await c.get("/ui/dashboard")).text
    assert '<td class="state-alert">1</td>' in html
    assert "观测代码未知" in html and "unknown_code" in html and "mchub-no-such-code" in html
    en = (await c.get("/ui/dashboard?lang=en")).text
    assert "Records refused one by one" in en and "unknown observation code" in en

async def test_the_mllp_log_marks_a_reused_control_id(seeded: Any) -> None:
    """Issue 16 finding 2: a new message under an old MSH-10 is stored and shown as "control id reused"."""
    cloud, c, _ = seeded
    await cloud.sql("INSERT INTO hl7_inbound (uid, received_ms, peer, sender, control_id, message_type, status, "
                    "ack_code, raw, control_key, control_id_reused) VALUES ('r1', $1, '10.0.0.7', '|', 'REUSED-1', "
                    "'ORU^R01', 'accepted', 'AA', $2, $3, TRUE)", now_ms(), b"MSH|...", "|\x1fREUSED-1")
    zh = (await c.get("/ui/dashboard")).text
    assert "REUSED-1" in zh and "控制号重复使用" in zh
    assert "control id reused" in (await c.get("/ui/dashboard?lang=en")).text
    found = (await c.get("/ui/dashboard/search", params={"q": "REUSED-1", "lang": "en"})).text
    assert "REUSED-1" in found and "control id reused" in found


async def test_a_raised_pregnancy_risk_grade_is_a_dashboard_alert(seeded: Any) -> None:
    """Issue 18: a change to a higher colour (here yellow -> red) is listed on the dashboard; the same
    grade stored again is not."""
    import datetime as dt

    import msgspec

    from cloud.mch import store
    from cloud.mch.profiles import reference_profile
    from protocol.mch.records import PrenatalVisit
    from tests.cloud.mch.conftest import add_subject

    cloud, c, _ = seeded
    assert "7天内没有妊娠风险升级" in (await c.get("/ui/dashboard")).text
    sid = await add_subject(cloud.state.db)
    case = PrenatalVisit(case_id="PN-R", site_id="S1", subject_id=str(sid), screened_on="2026-11-01",
                         gestational_weeks=24, risk_colour="yellow", risk_items=("yellow-1.1",))
    for version in (case, msgspec.structs.replace(case, risk_colour="red", risk_items=("red-x",))):
        async with cloud.state.db.transaction() as tx:
            await store.save(tx, store.Assembled(version, {}, ["visit:x"]), reference_profile(), dt.date(2026, 11, 2))
    html = (await c.get("/ui/dashboard")).text
    assert 'id="risk-raised"' in html and "PN-R" in html and "黄色 → " in html and "红色" in html
    assert html.count("<td>PN-R</td>") == 1  # the rise to red (a first grade of yellow is not an alert)
