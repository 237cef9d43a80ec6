"""The patient index: same ID number from two hubs -> one subject; a merge is audited and reversible."""

from __future__ import annotations

import random

import aiohttp
import pytest

from cloud import patients, registry
from cloud.crypto_at_rest import AtRest
from cloud.db.models import AuditEntry
from cloud.errors import PatientIndexError
from firmware_sim.fleet import random_national_id
from protocol.ids import now_ms
from protocol.model import SessionOpened, Subject
from tests.cloud.support import hub, serving

BATCH = {"Content-Type": "application/vnd.mchub.batch"}


async def test_one_person_across_hubs_and_a_reversible_merge(sqlite_cloud) -> None:
    cfg, keys = sqlite_cloud
    at_rest = AtRest(keys.at_rest, keys.blind_index)
    nid = random_national_id(random.Random(5))
    a, b = hub(keys, "PA", 1), hub(keys, "PB", 2)
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await registry.create_site("S1")
        for h in (a, b):
            await registry.register_hub(h.hub_id, site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        a.add_visit(national_id=nid)
        b.add_visit(national_id=nid.lower())  # same person, lower-case x if any: normalised
        # a walk-in identified by a QR code without her ID number
        b.pending.append(SessionOpened(hub_id="PB", epoch=b.epoch, seq=b.next_seq, at=now_ms(), session_id="qr-1",
                                       station_id="ST1", subject=Subject(name="王芳", source="qr")))
        b.next_seq += 1
        for h in (a, b):
            async with http.post(f"{url}/api/v1/batches", data=h.seal_from(1), headers=BATCH) as r:
                assert r.status == 200
        person = await patients.find_by_national_id(at_rest, nid)
        assert person is not None
        assert {v.hub_id for v in await patients.visits(person)} == {"PA", "PB"}
        walk_in = next(v.subject_id for v in await patients.visits_of_session("PB", "qr-1"))
        assert walk_in != person
        merge_id = await patients.merge(person, walk_in, actor="staff:li", reason="same person, checked card")
        assert len(await patients.visits(person)) == 3
        assert await patients.resolve(walk_in) == person
        with pytest.raises(PatientIndexError):
            await patients.merge(walk_in, person, actor="staff:li", reason="loop")
        await patients.unmerge(merge_id, actor="staff:wang")
        assert len(await patients.visits(person)) == 2
        assert await patients.resolve(walk_in) == walk_in
        with pytest.raises(PatientIndexError):
            await patients.unmerge(merge_id, actor="staff:wang")
        assert await patients.reveal(at_rest, person, actor="staff:li", purpose="HIS match") == (
            nid, next(r.subject.name for r in b.pending if isinstance(r, SessionOpened)))  # the latest card read
        actions = [e.action for e in await AuditEntry.filter(action__startswith="subject.").order_by("id")]
        assert actions == ["subject.merge", "subject.unmerge", "subject.reveal"]
