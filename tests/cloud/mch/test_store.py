"""Case storage: versions only on change, held vs queued, one outbox message per version,
staff corrections as new versions, follow-up tasks opened and closed (both dialects)."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from cloud.db.engine import Database
from cloud.mch import store
from cloud.mch.errors import MchError
from cloud.mch.profiles import reference_profile
from protocol.mch.records import BreastCase, CervicalCase
from tests.cloud.mch.conftest import add_subject
from tests.support.waiting import until

TODAY = dt.date(2026, 11, 20)


async def _save(db: Database, case: CervicalCase | BreastCase) -> store.Saved:
    async with db.transaction() as tx:
        return await store.save(tx, store.Assembled(case, {"x": 1}, ["hl7:1"]), reference_profile(), TODAY)


async def _rows(db: Database, sql: str, *args: object) -> list[dict[str, object]]:
    async with db.transaction() as tx:
        return [dict(r) for r in await tx.fetch(sql, *args)]


async def test_versions_only_on_change_and_uploads_only_complete_valid_records(db: Database) -> None:
    sid = await add_subject(db)
    base = CervicalCase(case_id="CX-1", site_id="S1", subject_id=str(sid), screened_on="2026-11-01")
    held = await _save(db, msgspec.structs.replace(base, hpv="positive_other"))  # needs cytology triage
    assert (held.outcome, held.version, held.state) == ("held", 1, "incomplete")
    assert (await _save(db, msgspec.structs.replace(base, hpv="positive_other"))).outcome == "unchanged"
    invalid = await _save(db, msgspec.structs.replace(base, hpv="positive_other", tbs="HSIL", sampling="liquid_based"))
    assert (invalid.outcome, invalid.version, invalid.state) == ("held", 2, "invalid")
    assert {e.rule for e in invalid.errors} == {"colposcopy_after_abnormal_cytology"}
    ok = await _save(db, msgspec.structs.replace(base, hpv="negative", tbs="NILM", sampling="liquid_based"))
    assert (ok.outcome, ok.version, ok.state) == ("queued", 3, "ready")
    records = await _rows(db, "SELECT version, status, errors FROM mch_records ORDER BY version")
    assert [r["status"] for r in records] == ["held", "held", "queued"]
    assert "colposcopy" in str(records[1]["errors"])
    queued = await _rows(db, "SELECT idempotency_key, payload FROM outbox WHERE topic = 'mch.upload'")
    assert [r["idempotency_key"] for r in queued] == ["mch.upload/CX-1/3"]
    cases = await _rows(db, "SELECT state, version, derived, sources FROM mch_cases")
    assert cases == [{"state": "ready", "version": 3, "derived": '{"x":1}', "sources": '["hl7:1"]'}]


async def test_a_newer_version_supersedes_a_queued_one(db: Database) -> None:
    sid = await add_subject(db)
    base = BreastCase(case_id="BR-1", site_id="S1", subject_id=str(sid), screened_on="2026-11-01")
    await _save(db, msgspec.structs.replace(base, ultrasound_birads="2"))
    await _save(db, msgspec.structs.replace(base, ultrasound_birads="2", palpation="normal"))
    records = await _rows(db, "SELECT version, status FROM mch_records ORDER BY version")
    assert records == [{"version": 1, "status": "superseded"}, {"version": 2, "status": "queued"}]


async def test_corrections_make_a_new_version_and_are_checked(db: Database) -> None:
    sid = await add_subject(db)
    case = CervicalCase(case_id="CX-2", site_id="S1", subject_id=str(sid), screened_on="2026-11-01",
                        hpv="negative", tbs="LSIL", sampling="pap")
    assert (await _save(db, case)).state == "invalid"
    async with db.transaction() as tx:
        await store.correct(tx, "CX-2", {"colposcopy": "not_done"}, actor="nurse1", reason="patient declined")
    saved = await _save(db, case)  # re-assembled from the same data: the correction applies
    assert (saved.outcome, saved.version, saved.state) == ("queued", 2, "ready")
    with pytest.raises(MchError, match="no field"):
        async with db.transaction() as tx:
            await store.correct(tx, "CX-2", {"colour": "red"}, actor="nurse1", reason="x")
    with pytest.raises(MchError, match="does not exist"):
        async with db.transaction() as tx:
            await store.correct(tx, "nope", {"hpv": "negative"}, actor="nurse1", reason="x")
    audit = await _rows(db, "SELECT actor, action FROM audit_log WHERE action = 'mch.correct'")
    assert audit == [{"actor": "nurse1", "action": "mch.correct"}]


async def test_follow_ups_open_notify_and_close(db: Database) -> None:
    sid = await add_subject(db)
    base = BreastCase(case_id="BR-2", site_id="S1", subject_id=str(sid), screened_on="2026-11-01")
    await _save(db, msgspec.structs.replace(base, ultrasound_birads="4B"))
    await _save(db, msgspec.structs.replace(base, ultrasound_birads="4B"))  # no second task, no second notice
    tasks = await _rows(db, "SELECT kind, status, due FROM mch_followups")
    assert tasks == [{"kind": "breast_biopsy", "status": "open", "due": "2026-12-01"}]
    notices = await _rows(db, "SELECT payload FROM outbox WHERE topic = 'mch.followup'")
    assert len(notices) == 1 and "breast_biopsy" in str(notices[0]["payload"])
    await _save(db, msgspec.structs.replace(base, ultrasound_birads="4B", pathology="fibroadenoma"))
    assert await _rows(db, "SELECT kind, status FROM mch_followups") == [{"kind": "breast_biopsy",
                                                                         "status": "closed"}]


async def test_follow_up_notices_go_through_the_notifier(db: Database, caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    from cloud import outbox
    from cloud.config import OutboxConfig
    from cloud.mch import followups

    sid = await add_subject(db)
    await _save(db, BreastCase(case_id="BR-3", site_id="S1", subject_id=str(sid), screened_on="2026-11-01",
                               ultrasound_birads="5"))
    notifier, stop = followups.LoggingNotifier(), asyncio.Event()
    task = asyncio.create_task(outbox.run_dispatcher(db, followups.FOLLOWUP_TOPIC, followups.deliverer(notifier),
                                                     OutboxConfig(), stop, idle_s=0.05))
    caplog.set_level("INFO", "mchub.cloud.mch.followup")
    await until(lambda: notifier.sent, "the follow-up notification")
    stop.set()
    await task
    assert [(n["case_id"], n["kind"], n["due"]) for n in notifier.sent] == [("BR-3", "breast_biopsy", "2026-12-01")]
    assert "follow-up breast_biopsy for case BR-3" in caplog.text
    assert (await _rows(db, "SELECT status FROM outbox WHERE topic = 'mch.followup'")) == [{"status": "done"}]


async def test_a_risk_grade_override_is_a_correction_with_a_reason_and_audited(db: Database) -> None:
    """Staff confirm or override the five-colour grade with a reason: a new version, an audit row."""
    from protocol.mch.records import PrenatalVisit

    sid = await add_subject(db)
    case = PrenatalVisit(case_id="PN-1", site_id="S1", subject_id=str(sid), screened_on="2026-11-01",
                         gestational_weeks=24, risk_colour="yellow", risk_items=("yellow-1.1",))
    assert (await _save(db, case)).version == 1  # type: ignore[arg-type]
    async with db.transaction() as tx:
        await store.correct(tx, "PN-1", {"risk_colour": "red"}, actor="dr-li",
                            reason="心功能III级（红色 1.1，门诊确诊）")
    saved = await _save(db, case)  # type: ignore[arg-type]
    assert saved.version == 2
    record = await _rows(db, "SELECT payload FROM mch_records WHERE case_id = 'PN-1' AND version = 2")
    assert '"risk_colour":"red"' in str(record[0]["payload"])
    audit = await _rows(db, "SELECT actor, action, reason FROM audit_log WHERE action = 'mch.correct'")
    assert audit == [{"actor": "dr-li", "action": "mch.correct", "reason": "心功能III级（红色 1.1，门诊确诊）"}]
    tasks = await _rows(db, "SELECT kind, status FROM mch_followups WHERE case_id = 'PN-1'")
    assert tasks == [{"kind": "high_risk_management", "status": "open"}]
