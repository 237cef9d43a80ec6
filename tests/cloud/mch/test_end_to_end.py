"""End to end on a real cloud (SQLite and PostgreSQL) and the platform simulator over HTTP.

Hub vitals arrive as sealed batches; HL7 and DICOM results are stored in ``results`` in
the shape the intakes write (docs/mch.md); the cloud's own background jobs assemble,
validate and upload. The platform fails 30 % of requests with 503 and rate-limits, yet
receives exactly one record per case version; an invalid case is held with field errors.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud import registry
from cloud.db.engine import Database
from firmware_sim.fleet import VirtualHub, random_national_id
from firmware_sim.mch_platform import Faults, Platform
from protocol.ids import now_ms, uuid7
from protocol.model import Record, SessionClosed, SessionOpened, Subject
from tests.cloud.mch.conftest import add_result
from tests.cloud.support import hub, make_cloud, serving
from tests.support.asgi import serve
from tests.support.services import free_port

DAY = 86_400_000
MCH = ('[mch]\nenabled = true\nplatform_url = "{url}"\napp_key = "mchub"\nassemble_interval_s = 0.2\n'
       'rate_per_s = 50\ntimeout_s = 2\nlease_s = 5\n[outbox]\nbase_delay_s = 0.05\nmax_delay_s = 0.3\n'
       'max_attempts = 100\n')


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}"
    return str(request.getfixturevalue("pg_dsn"))


def visit(h: VirtualHub, at: int, subject: Subject, obs: list[tuple[str, float, str]],
          pregnant_weeks: int | None = None, kind: str = "blood_pressure") -> str:
    """Queue one session with one reading on the virtual hub; returns the session id."""
    session = uuid7(at)
    recs: list[Record] = [
        SessionOpened(hub_id=h.hub_id, epoch=h.epoch, seq=h._seq(), at=at, session_id=session, station_id="ST1",
                      subject=subject, pregnant_weeks=pregnant_weeks),
        h._reading(at + 1000, "ST1", "ST1-dev", kind, session, obs),
        SessionClosed(hub_id=h.hub_id, epoch=h.epoch, seq=h._seq(), at=at + 2000, session_id=session,
                      reason="finished"),
    ]
    h.pending.extend(recs)
    return session


async def subject_of(db: Database, session: str) -> int:
    async with db.transaction() as tx:
        return int(await tx.fetchval("SELECT subject_id FROM sessions WHERE session_id = $1", session))


async def until(check: Any, seconds: float = 60.0) -> None:
    for _ in range(int(seconds / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def test_vitals_and_results_become_cases_uploaded_exactly_once(db_url: str, tmp_path: Path) -> None:
    rng = random.Random(8)
    platform = Platform(rate_per_s=8, faults=Faults(error_rate=0.3, seed=8))
    port = free_port()
    cfg, keys = make_cloud(tmp_path / "cloud", db_url, MCH.format(url=f"http://127.0.0.1:{port}"))
    (tmp_path / "cloud" / "mch.secret").write_text("platform-secret\n")
    today = dt.date.today()
    at = now_ms() - 3 * DAY

    def person(sex: str, birth: dt.date) -> Subject:
        return Subject(national_id=random_national_id(rng), name="王小花", sex=sex, birth_date=birth.isoformat())  # type: ignore[arg-type]

    h = hub(keys, "H001")
    pregnant = visit(h, at, person("2", dt.date(1992, 4, 1)), [("8480-6", 146, "mm[Hg]"), ("8462-4", 92, "mm[Hg]"),
                                                                ("29463-7", 63.5, "kg")], pregnant_weeks=26)
    child = visit(h, at + 10_000, person("1", today - dt.timedelta(days=400)),
                  [("29463-7", 9.6, "kg"), ("8302-2", 76.0, "cm")], kind="weight")
    screened = visit(h, at + 20_000, person("2", dt.date(1978, 9, 9)), [("8480-6", 118, "mm[Hg]"),
                                                                         ("8462-4", 76, "mm[Hg]")])
    abnormal = visit(h, at + 30_000, person("2", dt.date(1975, 1, 5)), [("8480-6", 121, "mm[Hg]"),
                                                                         ("8462-4", 70, "mm[Hg]")])
    async with serve(platform.app, port=port), serving(cfg) as url, aiohttp.ClientSession() as http:
        await registry.create_site("S1", "城关镇卫生院")
        await registry.register_hub("H001", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        assert await h.sync(http, url) == 200
        db = await Database.connect(cfg.database.url)
        try:
            woman, other = await subject_of(db, screened), await subject_of(db, abnormal)
            # what the HL7 intake (HPV, TBS over MLLP) and the DICOM intake (US SR over STOW-RS) store
            await add_result(db, woman, "hl7", "hpv", "30167-1", "阴性", at + DAY, {"interpretation": "negative"})
            await add_result(db, woman, "hl7", "cytology", "47527-7", "NILM", at + DAY, {"loinc": "47527-7"})
            await add_result(db, woman, "dicom", "birads", "", "2", at + DAY,
                             {"birads": "2", "report_modality": "US", "study_description": "双乳超声"})
            await add_result(db, other, "hl7", "cytology", "47527-7", "HSIL", at + DAY, {"loinc": "47527-7"})
            expected = {("prenatal", f"PN-H001-{pregnant}", 1), ("growth", f"GR-H001-{child}", 1),
                        ("cervical", f"CX-{woman}-{_day(at + DAY)}", 1), ("breast", f"BR-{woman}-{_day(at + DAY)}", 1)}

            async def all_accepted() -> bool:
                return set(platform.state.log) >= expected

            await until(all_accepted)
            await asyncio.sleep(1.0)  # time for any wrong second upload to show up
            async with db.transaction() as tx:
                held = await tx.fetchrow("SELECT c.state, r.status, r.errors FROM mch_cases c JOIN mch_records r "
                                         "ON r.case_id = c.case_id WHERE c.subject_id = $1 AND c.type = 'cervical'",
                                         other)
                uploaded = await tx.fetchval("SELECT COUNT(*) FROM mch_cases WHERE state = 'uploaded'")
                tasks = {r["kind"] for r in await tx.fetch("SELECT kind FROM mch_followups")}
        finally:
            await db.close()
    assert sorted(platform.state.log) == sorted(expected)  # exactly one record per case version
    assert len(platform.state.log) == len(set(platform.state.log))
    assert (held["state"], held["status"]) == ("invalid", "held") and "colposcopy" in held["errors"]
    assert uploaded == 4 and tasks == {"bp_review", "colposcopy"}
    pn = platform.state.accepted[("prenatal", f"PN-H001-{pregnant}")]
    assert (pn["sbp"], pn["bpClass"], pn["gestationalWeeks"], pn["orgCode"]) == (146, "pregnancy_hypertension", 26,
                                                                                  "S1")
    cx = platform.state.accepted[("cervical", f"CX-{woman}-{_day(at + DAY)}")]
    assert (cx["hpvResult"], cx["tbsResult"], cx["samplingMethod"]) == ("1", "1", "2")  # reference profile codes
    gr = platform.state.accepted[("growth", f"GR-H001-{child}")]
    assert gr["sex"] == "1" and gr["measuredLying"] is True and -2 < gr["zWfa"] < 2


def _day(ms: int) -> str:
    from cloud.mch.sources import finding_date

    return finding_date(ms, ms).replace("-", "")
