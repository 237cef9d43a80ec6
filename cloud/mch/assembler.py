"""Cases assembled from cloud data: hub visits, HL7 results and DICOM studies, per subject.

:func:`assemble_subject` rebuilds every case of one subject from what the database holds
(sessions and readings, ``results`` rows) and stores each through
:func:`cloud.mch.store.save`, all in one transaction under a per-subject lock. Rebuilding
from data, rather than patching cases event by event, makes it idempotent: running it
twice, or after a crash halfway, stores nothing new unless the data changed.

**Trigger (chosen design).** A change feed, not a hook in other parts' transactions:
:func:`sweep` (run every ``[mch] assemble_interval_s`` inside the cloud) looks for subjects
with data committed since its watermark — ``results.created_ms`` and the ``visit.closed``
/ ``visit.updated`` rows that ingest writes to the outbox in the batch's own transaction —
re-assembles them, then advances the watermark. The window re-reads the last
:data:`OVERLAP_MS` so a transaction that committed late (rows are stamped before commit)
is not missed. Results that waited on the unmatched list are seen when they are
resolved (``unmatched.resolved_ms``). So the intake paths need no change, and a result
stored by any part is seen. :func:`backfill` walks history since a date the same way, resumably.

Screening cases group a subject's results by type: a result more than ``window_days``
after the first one of the current case opens a new case (the next screening round).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cloud.db.engine import Database, Tx
from cloud.mch import store, vitals
from cloud.mch.sources import CHINA, evidence_of
from cloud.mch.store import Assembled, Saved
from protocol.ids import now_ms
from protocol.mch.assemble import BREAST_FIELDS, CERVICAL_FIELDS, Evidence, ResultMap
from protocol.mch.profile import Profile
from protocol.mch.records import BreastCase, CervicalCase
from protocol.model import SIMULATED

log = logging.getLogger("mchub.cloud.mch.assembler")
OVERLAP_MS = 120_000
WATERMARK = "assembler.watermark"
_LOCK_BASE = 7315 << 40


@dataclass
class Context:
    """What assembly needs besides the database."""

    profile: Profile
    result_map: ResultMap = field(default_factory=ResultMap)
    default_site: str = "default"
    window_days: int = 365
    today: Callable[[], dt.date] = field(default=lambda: dt.datetime.now(CHINA).date())
    include_simulated: bool = False  #: [fleet] training_rig: simulated readings may be uploaded


async def _visits(tx: Tx, subject_id: int, ids: list[int], sex: str, birth: str | None,
                  include_simulated: bool = False) -> list[vitals.Visit]:
    out: list[vitals.Visit] = []
    for sid in ids:
        sessions = await tx.fetch(
            "SELECT s.hub_id, s.session_id, s.opened_ms, s.pregnant_weeks, h.site_id FROM sessions s "
            "LEFT JOIN hubs h ON h.hub_id = s.hub_id WHERE s.subject_id = $1 ORDER BY s.opened_ms", sid)
        for s in sessions:
            readings = await tx.fetch("SELECT at_ms, observations FROM readings WHERE hub_id = $1 AND session_id = $2 "
                                      "AND ($3 OR status NOT LIKE $4) ORDER BY at_ms", s["hub_id"], s["session_id"],
                                      include_simulated, f'%"{SIMULATED}"%')
            out.append(vitals.Visit(s["hub_id"], s["session_id"], s["site_id"] or "", subject_id, s["opened_ms"],
                                    s["pregnant_weeks"], sex, birth,
                                    tuple((r["at_ms"], r["observations"]) for r in readings)))
    return out


async def _numeric_results(tx: Tx, ids: list[int]) -> list[dict[str, Any]]:
    """The subject's laboratory results with a number for a value (for the pregnancy risk grade)."""
    out: list[dict[str, Any]] = []
    for i in ids:
        for r in await tx.fetch("SELECT code, value, unit, observed_ms, created_ms FROM results WHERE subject_id = $1 "
                                "AND kind = 'lab' ORDER BY id", i):
            try:
                value = float(r["value"])
            except (TypeError, ValueError):
                continue
            out.append({"loinc": r["code"], "value": value, "unit": r["unit"],
                        "observed_ms": r["observed_ms"] or r["created_ms"]})
    return out


def _site(visits: list[vitals.Visit], on: str, default: str) -> str:
    """The site of the subject's last visit up to ``on``, else her first visit's, else the default."""
    known = [v for v in visits if v.site_id]
    before = [v for v in known if v.day.isoformat() <= on]
    return (before[-1] if before else known[0]).site_id if known else default


def _age(birth: str | None, on: str) -> int | None:
    try:
        b, d = dt.date.fromisoformat(birth or ""), dt.date.fromisoformat(on)
    except ValueError:
        return None
    return d.year - b.year - ((d.month, d.day) < (b.month, b.day))


def _order(e: Evidence) -> tuple[str, int]:
    """Date, then the row id of the result (sources are "hl7:<id>", "dicom:<id>")."""
    tail = e.source.rsplit(":", 1)[-1]
    return e.on, int(tail) if tail.isdigit() else 0


def screening_cases(subject_id: int, evidence: list[Evidence], visits: list[vitals.Visit], birth: str | None,
                    ctx: Context) -> list[Assembled]:
    """Cervical and breast cases from a subject's evidence, grouped into screening rounds."""
    out: list[Assembled] = []
    for prefix, fields, cls in (("CX", CERVICAL_FIELDS, CervicalCase), ("BR", BREAST_FIELDS, BreastCase)):
        rounds: list[tuple[str, dict[str, Any], list[str]]] = []
        for e in sorted((e for e in evidence if e.field in fields), key=_order):
            start = rounds[-1][0] if rounds else ""
            if not start or (dt.date.fromisoformat(e.on) - dt.date.fromisoformat(start)).days > ctx.window_days:
                rounds.append((e.on, {}, []))
            rounds[-1][1][e.field] = e.value
            if e.source not in rounds[-1][2]:
                rounds[-1][2].append(e.source)
        for opened, values, sources in rounds:
            case = cls(case_id=f"{prefix}-{subject_id}-{opened.replace('-', '')}",  # type: ignore[operator]
                       site_id=_site(visits, opened, ctx.default_site), subject_id=str(subject_id),
                       screened_on=opened, age_years=_age(birth, opened), **values)
            out.append(Assembled(case, {}, sources))
    return out


async def _with_study_modality(tx: Tx, row: Any) -> Any:
    """A DICOM BI-RADS row (from an SR, modality "SR") with the modality of its study's images.

    The DICOM intake indexes every instance in ``dicom_instances``; an ultrasound or
    mammography study holds US or MG images beside its report. One family in the study
    names the report; none or both leave the row as it is (read from its own words).
    """
    if row["source"] != "dicom":
        return row
    payload = msgspec.json.decode(row["payload"] or "{}")
    if not isinstance(payload, dict) or not payload.get("study_uid") or payload.get("modality") in ("US", "MG"):
        return row
    families = {r["family"] for r in await tx.fetch(
        "SELECT DISTINCT family FROM dicom_instances WHERE study_uid = $1 AND family IN ('US', 'MG')",
        str(payload["study_uid"]))}
    if len(families) != 1:
        return row
    return {**dict(row), "payload": {**payload, "report_modality": families.pop()}}


async def assemble_subject(db: Database, subject_id: int, ctx: Context) -> list[Saved]:
    """Rebuild and store every case of one subject (its survivor when it was merged away)."""
    async with db.transaction() as tx:
        row = await tx.fetchrow("SELECT id, sex, birth_date, merged_into FROM subjects WHERE id = $1", subject_id)
        hops = 0
        while row is not None and row["merged_into"] is not None and hops < 10:
            row = await tx.fetchrow("SELECT id, sex, birth_date, merged_into FROM subjects WHERE id = $1",
                                    row["merged_into"])
            hops += 1
        if row is None:
            return []
        sid = int(row["id"])
        if tx.dialect == "postgres":
            await tx.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_BASE + sid)
        ids = [sid, *(int(r["id"]) for r in await tx.fetch("SELECT id FROM subjects WHERE merged_into = $1", sid))]
        visits = await _visits(tx, sid, ids, str(row["sex"]), row["birth_date"], ctx.include_simulated)
        evidence: list[Evidence] = []
        for i in ids:
            for r in await tx.fetch("SELECT id, source, kind, code, value, observed_ms, created_ms, payload "
                                    "FROM results WHERE subject_id = $1 ORDER BY id", i):
                evidence += evidence_of(await _with_study_modality(tx, r), ctx.result_map)
        assembled = screening_cases(sid, evidence, visits, row["birth_date"], ctx)
        firsts = vitals.first_weights(visits)
        labs = await _numeric_results(tx, ids)
        for v in visits:
            for a in (vitals.prenatal(v, firsts.get(v.session_id), labs), vitals.growth_check(v)):
                if a is not None:
                    assembled.append(a)
        today = ctx.today()
        return [await store.save(tx, a, ctx.profile, today) for a in assembled]


async def changed_subjects(db: Database, since_ms: int) -> list[int]:
    """Subjects with results or hub visits committed at or after ``since_ms``."""
    async with db.transaction() as tx:
        subjects = {int(r["subject_id"]) for r in await tx.fetch(
            "SELECT DISTINCT subject_id FROM results WHERE created_ms >= $1 AND subject_id IS NOT NULL", since_ms)}
        subjects |= {int(r["subject_id"]) for r in await tx.fetch(  # results matched to a patient later
            "SELECT subject_id FROM unmatched WHERE resolved_ms >= $1 AND subject_id IS NOT NULL", since_ms)}
        for r in await tx.fetch("SELECT payload FROM outbox WHERE created_ms >= $1 AND topic IN "
                                "('visit.closed', 'visit.updated')", since_ms):
            p = msgspec.json.decode(r["payload"])
            sid = await tx.fetchval("SELECT subject_id FROM sessions WHERE hub_id = $1 AND session_id = $2",
                                    p.get("hub_id"), p.get("session_id"))
            if sid is not None:
                subjects.add(int(sid))
    return sorted(subjects)


async def sweep(db: Database, ctx: Context) -> list[Saved]:
    """Re-assemble the subjects whose data changed since the last sweep; advance the watermark."""
    started = now_ms()
    async with db.transaction() as tx:
        mark = int(await store.get_state(tx, WATERMARK) or 0)
    saved: list[Saved] = []
    for sid in await changed_subjects(db, max(0, mark - OVERLAP_MS)):
        saved += await assemble_subject(db, sid, ctx)
    async with db.transaction() as tx:
        await store.set_state(tx, WATERMARK, str(started))
    changed = [s for s in saved if s.outcome != "unchanged"]
    if changed:
        log.info("assembled %d new case version(s): %d queued, %d held", len(changed),
                 sum(s.outcome == "queued" for s in changed), sum(s.outcome == "held" for s in changed))
    return saved


@dataclass
class BackfillReport:
    """What :func:`backfill` did."""

    subjects: int = 0
    total: int = 0
    versions: int = 0
    queued: int = 0
    held: int = 0
    resumed_after: int = 0


Progress = Callable[[BackfillReport], None]


async def backfill(db: Database, ctx: Context, since: dt.date, *, restart: bool = False,
                   progress: Progress | None = None) -> BackfillReport:
    """Assemble every subject with visits or results since ``since``; resumable.

    The cursor (last subject done) is kept in ``mch_state`` under ``backfill:<since>``; a
    second run continues after it, ``restart=True`` starts over (nothing is duplicated
    either way: unchanged cases store nothing).
    """
    key = f"backfill:{since.isoformat()}"
    since_ms = int(dt.datetime.combine(since, dt.time(), CHINA).timestamp() * 1000)
    async with db.transaction() as tx:
        cursor = 0 if restart else int(await store.get_state(tx, key) or 0)
        rows = await tx.fetch(
            "SELECT subject_id FROM sessions WHERE opened_ms >= $1 AND subject_id > $2 "
            "UNION SELECT subject_id FROM results WHERE COALESCE(observed_ms, created_ms) >= $3 AND subject_id > $4 "
            "ORDER BY 1", since_ms, cursor, since_ms, cursor)
    report = BackfillReport(total=len(rows), resumed_after=cursor)
    for r in rows:
        for s in await assemble_subject(db, int(r["subject_id"]), ctx):
            report.versions += s.outcome != "unchanged"
            report.queued += s.outcome == "queued"
            report.held += s.outcome == "held"
        report.subjects += 1
        async with db.transaction() as tx:
            await store.set_state(tx, key, str(r["subject_id"]))
        if progress is not None:
            progress(report)
    return report
