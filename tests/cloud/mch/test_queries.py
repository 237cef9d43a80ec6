"""The query functions the dashboard and the CLI read (both dialects)."""

from __future__ import annotations

import datetime as dt

import pytest

from cloud.db.engine import Database
from cloud.mch import assembler, queries
from cloud.mch.errors import MchError
from cloud.mch.profiles import reference_profile
from tests.cloud.mch.conftest import add_result, add_subject, add_visit

T0 = 1_762_000_000_000  # 2025-11-01 China time
DAY = 86_400_000


async def _data(db: Database) -> tuple[int, int]:
    a, b = await add_subject(db), await add_subject(db)
    await add_visit(db, a, "s-a", T0, [], site_id="S1")
    await add_visit(db, b, "s-b", T0, [], site_id="S2", hub_id="H2")
    await add_result(db, a, "hl7", "hpv", "30167-1", "阴性", T0)
    await add_result(db, a, "dicom", "birads", "BIRADS-US", "4A", T0 + DAY)
    await add_result(db, b, "hl7", "cytology", "47527-7", "HSIL", T0, {"loinc": "47527-7"})
    await add_result(db, b, "dicom", "birads", "BIRADS-MG", "2", T0 + DAY)
    await assembler.sweep(db, assembler.Context(reference_profile(), today=lambda: dt.date(2026, 11, 20)))
    return a, b


async def test_case_list_detail_queue_and_followups(db: Database) -> None:
    a, b = await _data(db)
    rows = await queries.cases(db)
    assert {(r.case_id, r.state, r.upload) for r in rows} == {
        (f"CX-{a}-20251101", "ready", "queued"), (f"BR-{a}-20251102", "incomplete", "held"),
        (f"CX-{b}-20251101", "invalid", "held"), (f"BR-{b}-20251102", "invalid", "held")}  # MG alone: no CBE/US
    assert [r.missing for r in await queries.cases(db, state="incomplete")] == [["pathology"]]
    assert [r.errors for r in await queries.cases(db, state="invalid")] == [1, 1]
    assert {r.site_id for r in await queries.cases(db, site="S2")} == {"S2"}
    detail = await queries.case_detail(db, f"CX-{b}-20251101")
    assert detail["versions"][0]["errors"][0]["field"] == "colposcopy"
    assert [t["kind"] for t in detail["followups"]] == ["colposcopy"]
    with pytest.raises(MchError):
        await queries.case_detail(db, "nope")
    q = await queries.upload_queue(db)
    assert q["records"] == {"queued": 1, "held": 3} and q["outbox"] == {"pending": 1} and len(q["waiting"]) == 1
    assert await queries.dead_letters(db) == []
    assert len(await queries.followups(db)) == 2
    assert len(await queries.followups(db, overdue_on=dt.date(2025, 12, 5))) == 2  # due 30 days after
    assert await queries.followups(db, overdue_on=dt.date(2025, 11, 20)) == []


async def test_registers_by_period_and_site(db: Database) -> None:
    await _data(db)
    start, end = dt.date(2025, 11, 1), dt.date(2025, 11, 30)
    work = await queries.register(db, "workload", start, end)
    assert {r["site"]: (r["cervical"], r["breast"], r["ultrasound"], r["mammography"]) for r in work.rows} == {
        "site S1": (1, 1, 1, 0), "site S2": (1, 1, 0, 1)}
    assert len((await queries.register(db, "breast-followup", start, end)).rows) == 1  # the 4A
    assert len((await queries.register(db, "mammography", start, end, site="S2")).rows) == 1
    assert (await queries.register(db, "cervical-results", start, end, site="S2")).rows[0]["hsil_plus"] == 1
    assert (await queries.register(db, "breast-ultrasound", dt.date(2026, 1, 1), dt.date(2026, 2, 1))).rows == []
    with pytest.raises(MchError, match="choose one of"):
        await queries.register(db, "births", start, end)
