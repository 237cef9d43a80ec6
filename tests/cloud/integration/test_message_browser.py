"""The message browser's queries (cloud.integration.message_browser) on SQLite and PostgreSQL: filters, paging,
the detail with its stored ACK, reprocessing that never produces a result twice, replay."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud import outbox
from cloud.config import OutboxConfig
from cloud.integration import message_browser as mb
from cloud.mllp.store import InboundMeta, Status
from firmware_sim.his import MALFORMED, adt_message, lab_message
from protocol.hl7.ack import build_ack
from protocol.hl7.errors import MissingField
from protocol.hl7.message import parse_header
from protocol.hl7.salvage import salvage_header
from tests.cloud.integration.conftest import NID, Env

DAY = dt.date(2026, 3, 1)
T0 = int(dt.datetime.combine(DAY, dt.time(9)).timestamp() * 1000)  #: 09:00 local on DAY


async def store(env: Env, raw: bytes, at_ms: int, status: Status = "accepted", code: str = "AA",
                reason: str = "") -> str:
    """Store a message as the listener does, with the ACK it answers; returns its uid."""
    h = salvage_header(raw) if status != "accepted" else parse_header(raw)
    assert h is not None
    error = MissingField(reason, location="PID") if reason else None
    ack = build_ack(h, code, control_id="ACK1", timestamp="20260301", error=error)  # type: ignore[arg-type]
    result = await env.store.store(raw, InboundMeta(
        received_at=at_ms, peer="10.0.0.5", status=status, ack_code=code, reason=reason, sender=h.sender,
        control_id=h.control_id, message_type=f"{h.message_type}^{h.trigger_event}", ack=ack))
    return result.id


async def drain(env: Env) -> None:
    while await env.processor.run_once():
        pass


async def rows(env: Env, **filters: object) -> list[mb.Row]:
    return (await mb.search(env.db, env.at_rest, mb.Filters(**filters))).rows  # type: ignore[arg-type]


async def test_filters_by_control_id_state_dates_patient_name_and_content(env: Env) -> None:
    ok = await store(env, lab_message(1), T0)
    adt = await store(env, adt_message(2), T0 + 86_400_000)  # the next day
    bad = MALFORMED["no PID"]
    refused = await store(env, bad, T0 + 2 * 86_400_000, "error", "AE", "required_field_missing: no PID")
    await drain(env)

    assert [r.ref for r in await rows(env)] == [refused, adt, ok]  # newest first
    assert [r.ref for r in await rows(env, control_id="LIS00000001")] == [ok]
    assert [(r.ref, r.state) for r in await rows(env, state="processed")] == [(adt, "processed"), (ok, "processed")]
    assert [r.ref for r in await rows(env, state="error")] == [refused]
    # the end date is included, the start date too
    assert [r.ref for r in await rows(env, date_from=DAY, date_to=DAY)] == [ok]
    assert [r.ref for r in await rows(env, date_from=DAY + dt.timedelta(days=1))] == [refused, adt]
    # the patient by ID number (blind index) and by full name (name index): never in the clear
    assert [r.ref for r in await rows(env, national_id=NID)] == [ok]
    assert [r.ref for r in await rows(env, name="李娜")] == [adt]
    assert [r.ref for r in await rows(env, name=" 王 秀英 ")] == [ok]
    with pytest.raises(mb.BrowserError, match="ID number"):
        await rows(env, national_id="110105194912310021")
    stored = await env.q("SELECT patient_index, name_index FROM hl7_inbound WHERE uid = $1", ok)
    assert NID not in str(dict(stored[0])) and "王秀英" not in str(dict(stored[0]))
    # content: inside the sealed message (UTF-8 or GB18030) or its reason
    assert [r.ref for r in await rows(env, content="宫颈癌筛查")] == [ok]
    assert [r.ref for r in await rows(env, content="no PID")] == [refused]
    assert await rows(env, content="nowhere at all") == []
    with pytest.raises(mb.BrowserError):
        await rows(env, state="bogus")


async def test_pages_follow_the_cursor_without_gaps_or_repeats(env: Env) -> None:
    uids = [await store(env, lab_message(i), T0 + i) for i in range(mb.PAGE * 2 + 5)]
    seen: list[str] = []
    f = mb.Filters()
    while True:
        page = await mb.search(env.db, env.at_rest, f)
        seen += [r.ref for r in page.rows]
        if not page.cursor:
            break
        f = mb.Filters(cursor=page.cursor)
    assert seen == uids[::-1]
    # a content search pages the same way
    seen, f = [], mb.Filters(content="Hemoglobin")
    while True:
        page = await mb.search(env.db, env.at_rest, f)
        seen += [r.ref for r in page.rows]
        if not page.cursor:
            break
        f = mb.Filters(content="Hemoglobin", cursor=page.cursor)
    assert seen == uids[::-1]


async def test_detail_shows_raw_tree_ack_err_patient_and_results_audited(env: Env) -> None:
    ok = await store(env, lab_message(7), T0)
    refused = await store(env, MALFORMED["no PID"], T0 + 1, "error", "AE", "required_field_missing: no PID")
    await drain(env)
    d = await mb.hl7_detail(env.db, env.at_rest, ok, actor="web:alice")
    assert d.raw_lines[0].startswith("MSH|^~\\&|LIS|妇幼保健院") and len(d.raw_lines) == 7
    assert d.tree is not None and [s.name for s in d.tree.segments][:3] == ["MSH", "PID", "OBR"]
    assert d.ack_lines[1].startswith("MSA|AA|LIS00000007")
    assert d.patient is not None and d.patient["masked"] == "1101**********002X" and d.patient["name"] == "王**"
    assert len(d.results) == 4 and {r.code for r in d.results} >= {"718-7", "22637-3"}
    assert [r.name("zh-CN") for r in d.results] == ["HPV 16 型", "宫颈细胞学", "血红蛋白", "病理诊断"]
    e = await mb.hl7_detail(env.db, env.at_rest, refused, actor="web:alice")
    assert e.row.state == "error" and e.ack_tree is not None
    err = next(s for s in e.ack_tree.segments if s.name == "ERR")
    assert any(f.name == "HL7 Error Code" for f in err.fields)
    audit = await env.q("SELECT actor, detail FROM audit_log WHERE action = 'hl7.view' ORDER BY id")
    assert [a["actor"] for a in audit] == ["web:alice", "web:alice"]
    with pytest.raises(mb.BrowserError):
        await mb.hl7_detail(env.db, env.at_rest, "nope", actor="web:alice")


async def test_reprocessing_never_makes_a_result_twice(env: Env) -> None:
    ok = await store(env, lab_message(8), T0)
    await drain(env)
    before = await env.q("SELECT id, source_key FROM results ORDER BY id")
    done = await mb.send_again(env.db, env.at_rest, "hl7_in", [ok, ok], actor="web:alice", rules=mb.Rules())
    assert done == {ok: "ok"}
    assert [r.state for r in await rows(env)] == ["waiting"]
    await drain(env)
    assert await env.q("SELECT id, source_key FROM results ORDER BY id") == before
    assert [r.state for r in await rows(env)] == ["processed"]
    audit = await env.q("SELECT actor FROM audit_log WHERE action = 'hl7.reprocess'")
    assert [a["actor"] for a in audit] == ["web:alice"]


async def test_a_refused_message_is_checked_again_with_todays_rules(env: Env) -> None:
    raw = lab_message(9).replace(b"|LIS|", b"|LAB2|", 1)
    uid = await store(env, raw, T0, "rejected", "AR", "sender_not_allowed: LAB2")
    strict = mb.Rules(allowed_apps=frozenset({"LIS"}))
    out = await mb.send_again(env.db, env.at_rest, "hl7_in", [uid], actor="web:alice", rules=strict)
    assert out[uid].startswith("still refused: sender_not_allowed")
    assert [r.state for r in await rows(env)] == ["rejected"]
    fixed = mb.Rules(allowed_apps=frozenset({"LIS", "LAB2"}))  # cloud.toml [mllp] allowed_apps fixed
    assert await mb.send_again(env.db, env.at_rest, "hl7_in", [uid], actor="web:alice", rules=fixed) == {uid: "ok"}
    await drain(env)
    (row,) = await rows(env)
    assert row.state == "processed" and row.ack_code == "AR"  # the answer its sender got stays as it was
    assert len(await env.q("SELECT id FROM results WHERE origin = $1", f"hl7:{uid}")) == 4
    # reprocessing it once more changes nothing
    await mb.send_again(env.db, env.at_rest, "hl7_in", [uid], actor="web:alice", rules=fixed)
    await drain(env)
    assert len(await env.q("SELECT id FROM results")) == 4


async def test_a_refused_message_already_resent_and_accepted_stays_refused(env: Env) -> None:
    raw = lab_message(10)
    refused = await store(env, raw, T0, "rejected", "AR", "sender_not_allowed: LIS")
    copy = await store(env, raw, T0 + 1)  # the sender resent it after the fix
    await drain(env)
    out = await mb.send_again(env.db, env.at_rest, "hl7_in", [refused], actor="web:alice", rules=mb.Rules())
    assert copy in out[refused]
    assert len(await env.q("SELECT id FROM results")) == 4
    garbage = await store(env, MALFORMED["unsupported type"], T0 + 2, "oversized", "AR", "too_large")
    out = await mb.send_again(env.db, env.at_rest, "hl7_in", [garbage], actor="web:alice", rules=mb.Rules())
    assert "oversized" in out[garbage]


async def test_outbound_and_dicom_sources(env: Env) -> None:
    async with env.db.transaction() as tx:
        await outbox.enqueue(tx, "his.vitals", "his.vitals/H1/s1", {"hub_id": "H1", "session_id": "s1"})
        await outbox.enqueue(tx, "mch.upload", "mch.upload/case-7", {"case": 7})
        await tx.execute("INSERT INTO dicom_instances (sop_instance_uid, study_uid, series_uid, sop_class_uid, family, "
                         "modality, accession, path, received_ms) VALUES ('1.2.3', '1.2', '1.2.1', '1.2.840', "
                         "'mammography', 'MG', 'ACC9', 'x', $1)", T0)
    his = (await env.q("SELECT id FROM outbox WHERE topic = 'his.vitals'"))[0]["id"]
    await outbox.fail(env.db, his, "AR: PID-3 unknown patient", OutboxConfig(), permanent=True)
    out = await rows(env, source="hl7_out", state="dead")
    assert [(r.control_id, r.reason) for r in out] == [(f"MCHV{his:012d}", "AR: PID-3 unknown patient")]
    assert [r.ref for r in await rows(env, source="hl7_out", control_id=f"MCHV{his:012d}")] == [str(his)]
    assert [r.ref for r in await rows(env, source="hl7_out", content="unknown patient")] == [str(his)]
    assert [r.control_id for r in await rows(env, source="mch")] == ["mch.upload/case-7"]
    page = await mb.search(env.db, env.at_rest, mb.Filters(source="hl7_out", name="王秀英"))
    assert page.not_applicable == ["national_id", "name"]
    assert await mb.send_again(env.db, env.at_rest, "hl7_out", [str(his)], actor="web:alice",
                               rules=mb.Rules()) == {str(his): "ok"}
    assert [r.state for r in await rows(env, source="hl7_out")] == ["pending"]
    detail = await mb.outbox_detail(env.db, his)
    assert '"session_id": "s1"' in detail["payload"]
    dicom = await rows(env, source="dicom", control_id="ACC9")
    assert [(r.ref, r.state) for r in dicom] == [("1.2.3", "unmatched")]
    assert await rows(env, source="dicom", state="matched") == []
