"""Readings flagged simulated never reach the HIS (or the MCH platform) unless the cloud is a training rig.

Issue 19 finding 2: invented blood pressures were bound to a patient's session with nothing
marking them. A simulator's readings now carry ``status = ["simulated"]`` from the hub
(``[hub] simulated = true``, or the test-only synthetic driver), the cloud stores the mark
with the reading, and the vitals report for the HIS leaves them out unless
``[fleet] training_rig = true``. The MCH assembler reads readings with the same filter.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import msgspec

from cloud.db.engine import Database
from cloud.integration.vitals import build_report
from cloud.outbox import Message
from cloud.records.crypto_at_rest import AtRest
from protocol.model import SIMULATED, Reading
from tests.cloud.support import ensure_site, hub, make_cloud, register_hub, serving


async def test_simulated_readings_are_stored_with_their_mark_and_kept_from_the_his(tmp_path: Path) -> None:
    cfg, keys = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}")
    assert cfg.fleet.training_rig is False  # the default: a clinic, not a training rig
    h = hub(keys, "H-SIM")
    real = h.add_visit()
    invented = h.add_visit()
    for i, rec in enumerate(h.pending):
        if isinstance(rec, Reading) and rec in invented:
            h.pending[i] = msgspec.structs.replace(rec, status=(SIMULATED,))
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H-SIM", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        assert await h.sync(http, url) == 200
    db = await Database.connect(cfg.database.url)
    try:
        async with db.transaction() as tx:
            marks = {r["session_id"]: r["status"] for r in await tx.fetch(
                "SELECT session_id, status FROM readings WHERE session_id IS NOT NULL")}
        sessions = [next(r.session_id for r in visit if isinstance(r, Reading)) for visit in (real, invented)]
        assert marks[sessions[0]] == "[]" and marks[sessions[1]] == f'["{SIMULATED}"]'  # stored with the mark
        at_rest = AtRest(keys.at_rest, keys.blind_index)

        def message(session: str | None) -> Message:
            return Message(id=1, topic="his.vitals", idempotency_key="k",
                           payload={"hub_id": "H-SIM", "session_id": session}, attempts=0)

        clinic = await build_report(db, at_rest, message(sessions[0]), cfg.his)
        assert clinic is not None and len(clinic.readings) == 3  # real readings go to the HIS
        assert await build_report(db, at_rest, message(sessions[1]), cfg.his) is None  # invented: never
        rig = await build_report(db, at_rest, message(sessions[1]), cfg.his, include_simulated=True)
        assert rig is not None and len(rig.readings) == 3  # a training rig may send them to its test HIS
    finally:
        await db.close()
