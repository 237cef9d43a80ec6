"""End to end on a real cloud (SQLite and PostgreSQL) and the platform simulator over HTTP.

Hub vitals arrive as sealed batches. In the first test HL7 and DICOM results are written
to ``results`` in the intakes' shape while the platform fails 30 % of requests with 503
and rate-limits, yet receives exactly one record per case version. The second sends them
through the real intakes: HPV and TBS from the HIS over MLLP, an ultrasound and its SR
report over STOW-RS. In both an invalid case (HSIL without a colposcopy decision) is held
with its field errors, not uploaded.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cloud.db.engine import Database
from firmware_sim.fleet import VirtualHub, random_national_id
from firmware_sim.mch_platform import Faults, Platform
from protocol.ids import now_ms, uuid7
from protocol.model import Record, SessionClosed, SessionOpened, Subject
from tests.cloud.mch.conftest import add_result
from tests.cloud.support import dicom_sender, ensure_site, hub, make_cloud, register_hub, serving
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
        await ensure_site(cfg, "S1", "城关镇卫生院")
        await register_hub(cfg, "H001", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
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
    assert (pn["riskColour"], pn["riskPurple"], pn["riskItems"]) == ("green", False, [])  # 34 years, no lab results
    cx = platform.state.accepted[("cervical", f"CX-{woman}-{_day(at + DAY)}")]
    assert (cx["hpvResult"], cx["tbsResult"], cx["samplingMethod"]) == ("1", "1", "2")  # reference profile codes
    gr = platform.state.accepted[("growth", f"GR-H001-{child}")]
    assert gr["sex"] == "1" and gr["measuredLying"] is True and -2 < gr["zWfa"] < 2


def _day(ms: int) -> str:
    from cloud.mch.sources import finding_date

    return finding_date(ms, ms).replace("-", "")


async def test_through_the_real_intakes_mllp_and_stow_rs(db_url: str, tmp_path: Path) -> None:
    """HPV + TBS from the HIS over MLLP, an ultrasound with its SR report over STOW-RS, vitals from a hub."""
    from firmware_sim import pacs, pacs_data
    from firmware_sim.his import lab_message, send_messages
    from protocol.hl7.ack import parse_ack

    woman_id, other_id = "11010519491231002X", pacs_data.national_id("330102", "19760307", "024")
    platform, port, mllp, scp = Platform(), free_port(), free_port(), free_port()
    cfg, keys = make_cloud(tmp_path / "cloud", db_url, MCH.format(url=f"http://127.0.0.1:{port}") + (
        f'[mllp]\nenabled = true\nhost = "127.0.0.1"\nport = {mllp}\n[mllp.code_map.L]\nHPV16 = "59263-4"\n'
        f'TCT = "10524-7"\n[dicom]\nenabled = true\nobject_dir = "dicom"\nscp_host = "127.0.0.1"\nscp_port = {scp}\n'
        'allowed_calling_aets = { SIMPACS = ["127.0.0.1"] }\n'))
    (tmp_path / "cloud" / "mch.secret").write_text("platform-secret\n")
    h = hub(keys, "H002")
    visit(h, now_ms() - 2 * DAY, Subject(national_id=woman_id, name="王秀英", sex="2", birth_date="1949-12-31"),
          [("8480-6", 120, "mm[Hg]"), ("8462-4", 78, "mm[Hg]")])
    abnormal = lab_message(2).replace(b"NILM^", b"HSIL^").replace(woman_id.encode(), other_id.encode())
    study = "1.2.826.0.1.3680043.8.498.777"
    patient = pacs_data.Patient(national_id=woman_id)
    async with serve(platform.app, port=port), serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S2", "妇幼保健院")
        await register_hub(cfg, "H002", site_id="S2", public_key=bytes.fromhex(h.public_key_hex))
        assert await h.sync(http, url) == 200
        acks = [parse_ack(a) for a in await send_messages("127.0.0.1", mllp, [lab_message(1), abnormal])]
        assert [a.code for a in acks] == ["AA", "AA"]
        answer = await pacs.stow(f"{url}/dicomweb", [
            pacs_data.to_part10(pacs_data.ultrasound(patient, study_uid=study)),
            pacs_data.to_part10(pacs_data.basic_text_sr(patient, birads="2", study_uid=study))],
            credentials=await dicom_sender(url))
        assert answer.status == 200

        async def both_uploaded() -> bool:
            return {k for k, _, _ in platform.state.log} >= {"cervical", "breast"}

        await until(both_uploaded)
        await asyncio.sleep(1.0)
        db = await Database.connect(cfg.database.url)
        try:
            async with db.transaction() as tx:
                cases = sorted((r["type"], r["state"]) for r in await tx.fetch("SELECT type, state FROM mch_cases"))
                held = await tx.fetchval("SELECT errors FROM mch_records r JOIN mch_cases c ON c.case_id = r.case_id "
                                         "WHERE c.state = 'invalid'")
        finally:
            await db.close()
    log = sorted(platform.state.log)
    assert [(k, v) for k, _, v in log] == [("breast", 1), ("cervical", 1)]  # one record per case version
    cx = next(r for (k, _), r in platform.state.accepted.items() if k == "cervical")
    br = next(r for (k, _), r in platform.state.accepted.items() if k == "breast")
    assert (cx["hpvResult"], cx["tbsResult"], cx["samplingMethod"], cx["orgCode"]) == ("1", "1", "2", "S2")
    assert cx["cervixPathology"] == "1" and br["usBirads"] == "2" and br["personId"] == cx["personId"]
    assert cases == [("breast", "uploaded"), ("cervical", "invalid"), ("cervical", "uploaded")]
    assert "colposcopy" in held  # the HSIL woman's case is held with its field error, not uploaded
