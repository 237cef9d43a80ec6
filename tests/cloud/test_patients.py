"""The patient index: same ID number from two hubs -> one subject; a merge is audited and reversible."""

from __future__ import annotations

import random

import aiohttp
import msgspec
import pytest

from cloud.db.engine import Database
from cloud.errors import PatientIndexError
from cloud.records import patients
from cloud.records.crypto_at_rest import AtRest
from firmware_sim.fleet import random_national_id
from protocol.ids import now_ms
from protocol.model import SessionOpened, Subject
from tests.cloud.support import ensure_site, fleet_on, hub, register_hub, serving

BATCH = {"Content-Type": "application/vnd.mchub.batch"}


async def run(db: Database, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """One patient-index call in a transaction of its own."""
    async with db.transaction() as tx:
        return await fn(tx, *args, **kwargs)


async def audit_rows(db: Database, sql_filter: str) -> list[dict]:  # type: ignore[type-arg]
    async with db.transaction() as tx:
        return [dict(r) for r in await tx.fetch("SELECT action, actor, subject_id, reason, detail FROM audit_log "
                                                f"WHERE {sql_filter} ORDER BY id")]


async def test_one_person_across_hubs_and_a_reversible_merge(sqlite_cloud) -> None:
    cfg, keys = sqlite_cloud
    at_rest = AtRest(keys.at_rest, keys.blind_index)
    nid = random_national_id(random.Random(5))
    a, b = hub(keys, "PA", 1), hub(keys, "PB", 2)
    async with serving(cfg) as url, aiohttp.ClientSession() as http, fleet_on(cfg) as fleet:
        db = fleet.db
        await ensure_site(cfg, "S1")
        for h in (a, b):
            await register_hub(cfg, h.hub_id, site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        a.add_visit(national_id=nid)
        b.add_visit(national_id=nid.lower())  # same person, lower-case x if any: normalised
        # a walk-in identified by a QR code without her ID number
        b.pending.append(SessionOpened(hub_id="PB", epoch=b.epoch, seq=b.next_seq, at=now_ms(), session_id="qr-1",
                                       station_id="ST1", subject=Subject(name="王芳", source="qr")))
        b.next_seq += 1
        for h in (a, b):
            async with http.post(f"{url}/api/v1/batches", data=h.seal_from(1), headers=BATCH) as r:
                assert r.status == 200
        person = await run(db, patients.find_by_national_id, at_rest, nid)
        assert person is not None
        assert {v.hub_id for v in await run(db, patients.visits, person)} == {"PA", "PB"}
        walk_in = next(v.subject_id for v in await run(db, patients.visits_of_session, "PB", "qr-1"))
        assert walk_in != person
        merge_id = await run(db, patients.merge, person, walk_in, actor="staff:li", reason="same person, checked card")
        assert len(await run(db, patients.visits, person)) == 3
        assert await run(db, patients.resolve, walk_in) == person
        with pytest.raises(PatientIndexError):
            await run(db, patients.merge, walk_in, person, actor="staff:li", reason="loop")
        await run(db, patients.unmerge, merge_id, actor="staff:wang")
        assert len(await run(db, patients.visits, person)) == 2
        assert await run(db, patients.resolve, walk_in) == walk_in
        with pytest.raises(PatientIndexError):
            await run(db, patients.unmerge, merge_id, actor="staff:wang")
        assert await run(db, patients.reveal, at_rest, person, actor="staff:li", purpose="HIS match") == (
            nid, next(r.subject.name for r in b.pending if isinstance(r, SessionOpened)))  # the latest card read
        actions = [e["action"] for e in await audit_rows(db, "action LIKE 'subject.%'")]
        assert actions == ["subject.merge", "subject.unmerge", "subject.reveal"]


async def _subjects(cfg) -> list[tuple]:  # type: ignore[no-untyped-def]
    """Every subject row except updated_ms (which a merge and an unmerge both touch)."""
    from cloud.db.engine import Database

    db = await Database.connect(cfg.database.url)
    try:
        async with db.transaction() as tx:
            return [tuple(v for k, v in dict(r).items() if k != "updated_ms")
                    for r in await tx.fetch("SELECT * FROM subjects ORDER BY id")]
    finally:
        await db.close()


def _opened(h, session: str, subject: Subject) -> None:  # type: ignore[no-untyped-def]
    h.pending.append(SessionOpened(hub_id=h.hub_id, epoch=h.epoch, seq=h.next_seq, at=now_ms(), session_id=session,
                                   station_id="ST1", subject=subject))
    h.next_seq += 1


async def test_sources_and_hubs_merge_auditably_and_every_merge_reverses_exactly(any_cloud) -> None:
    """ID card on hub A, staff entry with the same ID on hub B -> one subject at once. A QR
    walk-in (hub B) and a staff entry without ID (hub C) are separate until merged; each merge
    is audited with who and why, listed in the history, and undone exactly, in any order."""
    cfg, keys = any_cloud
    at_rest = AtRest(keys.at_rest, keys.blind_index)
    nid = random_national_id(random.Random(9))
    hubs = [hub(keys, name, i) for i, name in enumerate(["MA", "MB", "MC"], 1)]
    a, b, c = hubs
    async with serving(cfg) as url, aiohttp.ClientSession() as http, fleet_on(cfg) as fleet:
        db = fleet.db
        await ensure_site(cfg, "S1")
        for h in hubs:
            await register_hub(cfg, h.hub_id, site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        a.add_visit(national_id=nid)
        _opened(b, "staff-1", Subject(national_id=nid, name="王芳", source="staff"))
        _opened(b, "qr-1", Subject(name="王芳", source="qr"))
        _opened(c, "staff-2", Subject(name="王芳", sex="2", source="staff"))
        for h in hubs:
            async with http.post(f"{url}/api/v1/batches", data=h.seal_from(1), headers=BATCH) as r:
                assert r.status == 200
        person = await run(db, patients.find_by_national_id, at_rest, nid)
        assert person is not None
        assert {(v.hub_id, v.subject_id) for v in await run(db, patients.visits, person)} == {("MA", person),
                                                                                              ("MB", person)}
        qr = (await run(db, patients.visits_of_session, "MB", "qr-1"))[0].subject_id
        staff = (await run(db, patients.visits_of_session, "MC", "staff-2"))[0].subject_id
        assert len({person, qr, staff}) == 3
        before = await _subjects(cfg)
        m1 = await run(db, patients.merge, person, qr, actor="staff:li", reason="walk-in showed her card")
        # onto the survivor
        m2 = await run(db, patients.merge, qr, staff, actor="staff:zhao", reason="same phone number")
        assert await run(db, patients.resolve, staff) == person
        assert {v.hub_id for v in await run(db, patients.visits, staff)} == {"MA", "MB", "MC"}
        assert len(await run(db, patients.visits, qr)) == 4  # from any of her records: all four visits
        await run(db, patients.unmerge, m1, actor="staff:wang")  # the first merge first: the second stays
        assert await run(db, patients.resolve, qr) == qr and await run(db, patients.resolve, staff) == person
        await run(db, patients.unmerge, m2, actor="staff:wang")
        assert await _subjects(cfg) == before  # nothing else changed: the merges rewrote no data
        assert {v.hub_id for v in await run(db, patients.visits, person)} == {"MA", "MB"}
        history = await run(db, patients.history, person)
        assert [(h.merge_id, h.merged_id, h.actor, h.undone_by) for h in history] == [
            (m1, qr, "staff:li", "staff:wang"), (m2, staff, "staff:zhao", "staff:wang")]
        assert all(h.survivor_id == person and h.undone_ms for h in history)
        entries = await audit_rows(db, "action IN ('subject.merge', 'subject.unmerge')")
        assert [(e["action"], e["actor"], e["subject_id"], e["reason"]) for e in entries] == [
            ("subject.merge", "staff:li", person, "walk-in showed her card"),
            ("subject.merge", "staff:zhao", person, "same phone number"),
            ("subject.unmerge", "staff:wang", person, None), ("subject.unmerge", "staff:wang", person, None)]
        assert [msgspec.json.decode(e["detail"])["merged_id"] for e in entries] == [qr, staff, qr, staff]
