"""Records the cloud refused one by one (issue 17 finding 2) on the hub: the dead-letter list,
the status page's alarm in zh-CN and English, resend (optionally without some values) and dismiss,
each audited with the staff member's name, and the same through the console API."""

from __future__ import annotations

from typing import Any

import pytest

from edge.store import reader as q
from edge.store.deadletters import RESENT_OF, DeadLetterError
from protocol.ids import now_ms, reading_uid
from protocol.model import Reading
from tests.edge.hubkit import add_readings
from tests.edge.web.conftest import client, sign_in


async def refuse(hub: Any, *refused: tuple[int, str]) -> None:
    """What the sync client does with an ack naming refused records (edge/sync.py)."""
    mark = max(seq for seq, _ in refused)
    await hub.writer.call(q.store_ack(mark, b"ack", now_ms(), refused))


async def test_a_refused_record_raises_the_alarm_and_staff_resend_or_dismiss_it(web_hub: tuple[Any, Any]) -> None:
    hub, app = web_hub
    seqs = await add_readings(hub, range(1, 4))
    await refuse(hub, (seqs[0], "unknown_code"), (seqs[1], "wrong_unit"))
    await refuse(hub, (seqs[0], "unknown_code"))  # the same ack again (a resent batch): kept once
    assert [d["seq"] for d in hub.reader.dead_letters()] == [seqs[1], seqs[0]]
    assert hub.reader.count_dead_letters() == 2
    async with client(app) as c:
        token = await sign_in(c)
        html = (await c.get("/")).text
        assert "2 条记录被云端拒收，等待工作人员处理" in html and "有数值的代码云端不认识" in html
        html = (await c.get("/?lang=en")).text
        assert 'id="dead-letter-alarm"' in html and "2 record(s) refused by the cloud wait for staff" in html
        assert "a value is not in its standard unit" in html and f'data-dead-letter="{seqs[0]}"' in html
        r = await c.post("/dead-letters/resend", data={"seq": str(seqs[0]), "drop": "8867-4", "csrf_token": token})
        assert r.status_code == 303
        html = (await c.get("/?lang=en")).text
        assert "Resent as a new reading" in html and "1 record(s) refused by the cloud" in html
        r = await c.post("/dead-letters/resend", data={"seq": str(seqs[0]), "csrf_token": token})
        assert "already dealt with" in (await c.get("/?lang=en")).text
        assert (await c.post("/dead-letters/dismiss", data={"seq": str(seqs[1])})).status_code == 403  # CSRF
        r = await c.post("/dead-letters/dismiss", data={"seq": str(seqs[1]), "csrf_token": token})
        html = (await c.get("/?lang=en")).text
        assert "Dismissed: the record is kept" in html and 'id="dead-letter-alarm"' not in html
    rows = {d["seq"]: d for d in hub.reader.dead_letters()}
    new_seq = rows[seqs[0]]["resent_seq"]
    assert new_seq == seqs[-1] + 1 and rows[seqs[0]]["resolved_by"] == "nurse"
    assert rows[seqs[1]]["resent_seq"] is None and rows[seqs[1]]["resolved_by"] == "nurse"
    st = hub.reader.state()
    resent = hub.reader.records(new_seq, 1)[0]
    original = hub.reader.records(seqs[0], 1)[0]
    assert isinstance(resent, Reading) and isinstance(original, Reading)
    assert resent.status[-1] == RESENT_OF + reading_uid(st["hub_id"], st["epoch"], seqs[0], original.at)
    assert [o.code for o in resent.observations] == [o.code for o in original.observations if o.code != "8867-4"]
    assert resent.device_time == original.device_time and resent.at == original.at
    kinds = [(a["kind"], a["actor"]) for a in hub.reader.audit(30)]
    assert ("dead_letter_resend", "nurse") in kinds and ("dead_letter_dismiss", "nurse") in kinds
    assert kinds.count(("refused", "cloud")) == 2
    # a new reading after the resend gets the next seq: the ledger and the resend share one counter
    assert await add_readings(hub, range(10, 11)) == [new_seq + 1]


async def test_only_readings_are_resent_and_a_correction_must_leave_a_value(web_hub: tuple[Any, Any]) -> None:
    hub, _ = web_hub
    seqs = await add_readings(hub, range(1, 2))
    await refuse(hub, (seqs[0], "not_finite"))
    with pytest.raises(DeadLetterError, match="leaves no observation"):
        await hub.resend_dead_letter(seqs[0], "nurse", ("8480-6", "8462-4", "8867-4"))
    with pytest.raises(DeadLetterError, match="no dead letter"):
        await hub.resend_dead_letter(999, "nurse")
    assert hub.reader.state()["next_seq"] == seqs[0] + 1  # nothing was stored by the failed attempts
    await hub.dismiss_dead_letter(seqs[0], "nurse")
    with pytest.raises(DeadLetterError, match="no open dead letter"):
        await hub.dismiss_dead_letter(seqs[0], "nurse")


async def test_the_console_api_lists_resends_and_dismisses(web_hub: tuple[Any, Any]) -> None:
    hub, app = web_hub
    seqs = await add_readings(hub, range(1, 3))
    await refuse(hub, (seqs[0], "unknown_code"), (seqs[1], "unknown_code"))
    from edge.web.auth import read_console_token

    headers = {"Authorization": f"Bearer {read_console_token(hub.cfg.data_dir)}"}  # what the CLI sends
    async with client(app) as c:
        listed = (await c.get("/api/dead-letters", headers=headers)).json()
        assert [d["seq"] for d in listed] == [seqs[1], seqs[0]] and listed[0]["reason"] == "unknown_code"
        r = await c.post(f"/api/dead-letters/{seqs[0]}/resend", json={"drop_codes": ["8867-4"], "by": "tech"},
                         headers=headers)
        assert r.status_code == 200 and r.json()["seq"] == seqs[1] + 1
        r = await c.post(f"/api/dead-letters/{seqs[1]}/dismiss", json={"by": "tech"}, headers=headers)
        assert r.status_code == 200
        assert (await c.post(f"/api/dead-letters/{seqs[1]}/dismiss", json={}, headers=headers)).status_code == 409
        assert (await c.get("/api/dead-letters", headers=headers)).json() == []
        assert len((await c.get("/api/dead-letters?all=1", headers=headers)).json()) == 2
        assert (await c.get("/api/status", headers=headers)).json()["dead_letters_open"] == 0
