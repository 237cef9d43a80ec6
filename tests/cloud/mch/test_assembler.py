"""Assembly from cloud data (both dialects): screening cases from HL7/DICOM result rows,
prenatal visits and child growth checks from hub visits, the change-feed sweep and the
resumable backfill."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cloud.db.engine import Database
from cloud.mch import assembler
from cloud.mch.profiles import reference_profile
from protocol.ids import now_ms
from tests.cloud.mch.conftest import add_result, add_subject, add_visit

DAY = 86_400_000
T0 = 1_762_000_000_000  # 2025-11-01 20:26 China time


def ctx() -> assembler.Context:
    return assembler.Context(reference_profile(), today=lambda: dt.date(2026, 11, 20))


async def rows(db: Database, sql: str, *args: object) -> list[dict[str, Any]]:
    async with db.transaction() as tx:
        return [dict(r) for r in await tx.fetch(sql, *args)]


async def test_screening_cases_from_results_and_a_visit(db: Database) -> None:
    sid = await add_subject(db, birth_date="1980-05-01")
    await add_visit(db, sid, "sess-a", T0, [[{"code": "8480-6", "value": 118, "unit": "mm[Hg]"}]], site_id="S7")
    await add_result(db, sid, "hl7", "hpv", "30167-1", "阴性", T0 + DAY)
    await add_result(db, sid, "hl7", "cytology", "47527-7", "NILM", T0 + 2 * DAY, {"loinc": "47527-7"})
    await add_result(db, sid, "dicom", "birads", "BIRADS-US", "2", T0 + 3 * DAY)
    saved = await assembler.sweep(db, ctx())
    assert sorted((s.case_id, s.outcome, s.state) for s in saved) == [
        (f"BR-{sid}-20251104", "queued", "ready"), (f"CX-{sid}-20251102", "queued", "ready")]
    cases = await rows(db, "SELECT case_id, site_id, sources FROM mch_cases ORDER BY case_id")
    assert {c["site_id"] for c in cases} == {"S7"}  # the site of her visit
    payload = (await rows(db, "SELECT payload FROM mch_records WHERE case_id = $1", f"CX-{sid}-20251102"))[0]
    assert '"hpv":"negative"' in payload["payload"] and '"age_years":45' in payload["payload"]
    assert [s.outcome for s in await assembler.sweep(db, ctx())] == ["unchanged", "unchanged"]  # overlap re-read
    await add_result(db, sid, "hl7", "pathology", "22637-3", "乳腺纤维腺瘤", T0 + 20 * DAY)
    assert {s.outcome for s in await assembler.sweep(db, ctx())} == {"unchanged", "queued"}
    uploads = await rows(db, "SELECT idempotency_key FROM outbox WHERE topic = 'mch.upload' ORDER BY id")
    assert [u["idempotency_key"] for u in uploads] == [
        f"mch.upload/CX-{sid}-20251102/1", f"mch.upload/BR-{sid}-20251104/1", f"mch.upload/BR-{sid}-20251104/2"]


async def test_a_new_screening_round_is_a_new_case_and_abnormal_results_are_held(db: Database) -> None:
    sid = await add_subject(db)
    await add_result(db, sid, "hl7", "cytology", "47527-7", "NILM", T0, {"loinc": "47527-7"})
    await add_result(db, sid, "hl7", "cytology", "47527-7", "HSIL", T0 + 400 * DAY, {"loinc": "47527-7"})
    saved = {s.case_id: s for s in await assembler.sweep(db, ctx())}
    assert saved[f"CX-{sid}-20251101"].state == "ready"
    held = saved[f"CX-{sid}-20261206"]
    assert held.state == "invalid" and {e.field for e in held.errors if e.severity == "error"} >= {"colposcopy"}
    tasks = await rows(db, "SELECT case_id, kind FROM mch_followups")
    assert tasks == [{"case_id": f"CX-{sid}-20261206", "kind": "colposcopy"}]


async def test_prenatal_visits_with_weight_gain_and_child_growth(db: Database) -> None:
    mother = await add_subject(db, birth_date="1995-03-01")
    bp = [{"code": "8480-6", "value": 150, "unit": "mm[Hg]"}, {"code": "8462-4", "value": 95, "unit": "mm[Hg]"}]
    await add_visit(db, mother, "p1", T0, [[{"code": "29463-7", "value": 55.0, "unit": "kg"}]], pregnant_weeks=12)
    await add_visit(db, mother, "p2", T0 + 70 * DAY, [bp, [{"code": "29463-7", "value": 60.5, "unit": "kg"}]],
                    pregnant_weeks=22)
    child = await add_subject(db, sex="1", birth_date="2024-11-01")  # 365 days old at T0
    await add_visit(db, child, "c1", T0, [[{"code": "29463-7", "value": 7.6, "unit": "kg"},
                                           {"code": "8302-2", "value": 75.7, "unit": "cm"}]])
    await assembler.sweep(db, ctx())
    cases = {c["case_id"]: c for c in await rows(db, "SELECT case_id, state, derived, missing FROM mch_cases")}
    assert cases["PN-H1-p1"]["missing"] == '["systolic","diastolic"]' and cases["PN-H1-p1"]["state"] == "incomplete"
    assert cases["PN-H1-p2"]["state"] == "ready" and cases["PN-H1-p2"]["derived"] == '{"weight_gain_kg":5.5}'
    p2 = (await rows(db, "SELECT payload FROM mch_records WHERE case_id = 'PN-H1-p2'"))[0]["payload"]
    assert '"bp_class":"pregnancy_hypertension"' in p2
    growth = (await rows(db, "SELECT payload FROM mch_records WHERE case_id = 'GR-H1-c1'"))[0]["payload"]
    assert '"findings":["wasting","underweight"]' in growth and '"z_wfa":-2.' in growth
    kinds = sorted(r["kind"] for r in await rows(db, "SELECT kind FROM mch_followups"))
    assert kinds == ["bp_review", "growth_review"]


async def test_backfill_is_resumable(db: Database) -> None:
    subjects = [await add_subject(db) for _ in range(3)]
    for i, sid in enumerate(subjects):
        await add_result(db, sid, "hl7", "hpv", "30167-1", "阴性", T0 + i * DAY)
    seen: list[int] = []
    report = await assembler.backfill(db, ctx(), dt.date(2025, 1, 1), progress=lambda r: seen.append(r.subjects))
    assert (report.total, report.subjects, report.queued, seen) == (3, 3, 3, [1, 2, 3])
    again = await assembler.backfill(db, ctx(), dt.date(2025, 1, 1))
    assert (again.total, again.resumed_after) == (0, subjects[-1])
    redo = await assembler.backfill(db, ctx(), dt.date(2025, 1, 1), restart=True)
    assert (redo.total, redo.versions) == (3, 0)  # nothing changed: no new versions
    assert (await assembler.backfill(db, ctx(), dt.date(2026, 1, 1), restart=True)).total == 0


async def test_an_sr_takes_the_modality_of_its_study_and_late_matches_are_seen(db: Database) -> None:
    sid = await add_subject(db)
    async with db.transaction() as tx:
        for uid, family in (("1.2.3.1", "US"), ("1.2.3.2", "SR")):
            await tx.execute("INSERT INTO dicom_instances (sop_instance_uid, study_uid, series_uid, sop_class_uid, "
                             "family, path, subject_id, received_ms) VALUES ($1, '1.2.3', '1.2.3.9', '1.2', $2, 'p', "
                             "$3, 0)", uid, family, sid)
    await add_result(db, sid, "dicom", "birads", "BI-RADS", "2", T0, {"modality": "SR", "study_uid": "1.2.3"})
    saved = await assembler.sweep(db, ctx())
    assert [(s.case_id, s.state) for s in saved] == [(f"BR-{sid}-20251101", "ready")]
    # a result that waited on the unmatched list is attached later: its created_ms is old
    rid = await add_result(db, None, "hl7", "hpv", "30167-1", "阴性", T0)
    async with db.transaction() as tx:
        await tx.execute("UPDATE results SET created_ms = 0, subject_id = $1 WHERE id = $2", sid, rid)
        await tx.execute("INSERT INTO unmatched (kind, ref, status, subject_id, resolved_ms, created_ms) "
                         "VALUES ('hl7', 'm1', 'resolved', $1, $2, 0)", sid, now_ms())
    assert {s.case_id for s in await assembler.sweep(db, ctx()) if s.outcome == "queued"} == {f"CX-{sid}-20251101"}


async def test_simulated_readings_are_not_uploaded_unless_the_cloud_is_a_training_rig(db: Database) -> None:
    """Issue 19 finding 2: a reading flagged simulated never reaches the MCH platform of a real deployment."""
    growth = [[{"code": "29463-7", "value": 7.6, "unit": "kg"}, {"code": "8302-2", "value": 75.7, "unit": "cm"}]]
    real, invented = await add_subject(db, sex="1", birth_date="2024-11-01"), \
        await add_subject(db, sex="1", birth_date="2024-11-01")
    await add_visit(db, real, "c1", T0, growth)
    await add_visit(db, invented, "c2", T0, growth)
    async with db.transaction() as tx:
        await tx.execute("UPDATE readings SET status = $1 WHERE session_id = 'c2'", '["simulated"]')
    await assembler.sweep(db, ctx())
    payloads = {r["case_id"]: r["payload"] for r in await rows(db, "SELECT case_id, payload FROM mch_records")}
    assert '"z_wfa"' in payloads["GR-H1-c1"] and '"z_wfa"' not in payloads.get("GR-H1-c2", "")
    rig = assembler.Context(reference_profile(), today=lambda: dt.date(2026, 11, 20), include_simulated=True)
    await assembler.assemble_subject(db, invented, rig)
    payloads = {r["case_id"]: r["payload"] for r in await rows(db, "SELECT case_id, payload FROM mch_records")}
    assert '"z_wfa"' in payloads["GR-H1-c2"]  # a training rig uploads them to its test platform
