"""Status API (JSON) over real HTTP with the console token: status, staff entry, binding an unbound reading."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from edge.status import render
from edge.web.auth import read_console_token
from mchub.cli import main
from tests.edge.hubkit import add_readings, started, synced, wait_until
from tests.support.refcloud import RefCloud


async def test_status_staff_entry_and_bind(hub_dir: Path, refcloud: RefCloud,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    hub = await started(hub_dir, web=True)
    base = f"http://127.0.0.1:{hub.web_port}/api"
    try:
        await add_readings(hub, range(1, 4))  # no session yet: unbound
        await wait_until(lambda: synced(hub))
        async with aiohttp.ClientSession() as anonymous, anonymous.get(f"{base}/status") as r:
            assert r.status == 401
        token = read_console_token(hub.cfg.data_dir)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as http:
            async with http.get(f"{base}/status") as r:
                snap = await r.json()
            assert snap["queue_depth"] == 0 and snap["unbound_count"] == 3 and snap["sync"]["last_success_ms"]
            for _ in range(5):  # a poller (the demo's display, once a second) is audited once, not per poll
                async with http.get(f"{base}/status") as r:
                    assert r.status == 200
            views = [a for a in hub.reader.audit(50) if a["kind"] == "view" and "api: status" in a["detail"]]
            assert len(views) == 1
            async with http.post(f"{base}/sessions", json={"station_id": "room-1", "name": "王芳",
                                                           "national_id": "11010519491231002x"}) as r:
                assert r.status == 201
                session_id = (await r.json())["session_id"]
            async with http.post(f"{base}/sessions", json={"station_id": "room-1", "national_id": "123"}) as r:
                assert r.status == 400 and "18 characters" in (await r.json())["error"]
            async with http.get(f"{base}/readings/unbound") as r:
                uid = (await r.json())[0]["uid"]
            async with http.post(f"{base}/readings/{uid}/bind", json={"session_id": session_id, "by": "nurse"}) as r:
                assert r.status == 200
            async with http.post(f"{base}/readings/{uid}/bind", json={"session_id": session_id, "by": "nurse"}) as r:
                assert r.status == 409 and "already bound" in (await r.json())["error"]
            async with http.get(f"{base}/sessions/today") as r:
                [s] = await r.json()
            assert s["id_masked"] == "1101**********002X" and s["name_masked"] == "王*" and s["readings"] == 1
            async with http.post(f"{base}/sessions/close", json={"station_id": "room-1"}) as r:
                assert (await r.json())["closed"] == 1
            async with http.get(f"{base}/status") as r:
                snap = await r.json()
        await wait_until(lambda: synced(hub))
        text = hub_dir.read_text().replace("port = 0", f"port = {hub.web_port}")  # noqa: ASYNC240
        hub_dir.write_text(text)  # noqa: ASYNC240 - so `mchub edge status` finds the running hub
        assert await asyncio.to_thread(main, ["edge", "status", "--config", str(hub_dir)]) == 0
    finally:
        await hub.stop()
    console = capsys.readouterr().out
    assert "records waiting to sync: 0" in console and "hub not running" not in console  # live, from the API
    text = render(snap, "zh-CN")
    assert "待同步记录 / records waiting to sync" in text and "今日就诊 / today's sessions: 1" in text
    assert "11010519491231002X" not in text
    types = [r[2] for r in refcloud.records("clinic-1")]
    assert types == ["Reading"] * 3 + ["SessionOpened", "ReadingBound", "SessionClosed"]
