"""The PostgreSQL hot path (cloud/db/pg_ingest.py): cached keys never outlive a revocation,
the direct COPY falls back to INSERT ... ON CONFLICT DO NOTHING, stored JSON is unchanged."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec
import pytest

from cloud.db.engine import Database, epoch_to_db
from cloud.db.migrations import PartitionCache, migrate
from cloud.db.pg_ingest import STAGE_FROM, _ObsJson
from cloud.intake.ingest import Ingestor
from firmware_sim.fleet import VirtualHub
from protocol.ids import reading_uid
from protocol.model import Observation
from tests.cloud.support import ensure_site, fleet_on, hub, register_hub, revoke_hub

pytestmark = pytest.mark.postgres


@pytest.fixture
async def cloud(pg_cloud) -> AsyncIterator[tuple[Ingestor, Database, VirtualHub]]:  # type: ignore[no-untyped-def]
    cfg, keys = pg_cloud
    db = await Database.connect(cfg.database.url)
    await migrate(db)
    h = hub(keys, "HP1")
    await ensure_site(db, "S1")
    await register_hub(db, "HP1", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
    yield Ingestor(db, keys), db, h
    await db.close()


async def _scalar(db: Database, sql: str) -> object:
    async with db.transaction() as tx:
        return await tx.fetchval(sql)


def _visits(h: VirtualHub, n: int) -> None:
    for _ in range(n):
        h.add_visit()


@pytest.mark.parametrize("visits", [2, 60], ids=["arrays", "copy"])
async def test_a_revocation_after_the_key_was_cached_is_honoured_at_once(cloud, visits: int) -> None:
    ing, db, h = cloud
    _visits(h, visits)
    assert (await ing.handle(h.seal_from(1, limit=6))).status == 200  # the key is now cached
    await revoke_hub(db, "HP1", reason="stolen")
    answer = await ing.handle(h.seal_from(7))
    assert (answer.status, answer.reason) == (403, "revoked")
    assert await _scalar(db, "SELECT COUNT(*) FROM readings") == 4
    assert await _scalar(db, "SELECT acked_through FROM sync_state") == 6
    assert await _scalar(db, "SELECT COUNT(*) FROM audit_log WHERE reason = 'revoked'") == 1


async def test_an_expired_key_is_refused_although_cached(cloud) -> None:
    ing, db, h = cloud
    _visits(h, 2)
    assert (await ing.handle(h.seal_from(1, limit=6))).status == 200
    async with fleet_on(db) as fleet:
        await fleet.expire_key("test", "HP1", (await fleet.hub_infos())[0].key_ids[0], at_ms=1)
    answer = await ing.handle(h.seal_from(7))
    assert (answer.status, answer.reason) == (401, "unknown_key")
    assert await _scalar(db, "SELECT acked_through FROM sync_state") == 6


async def test_a_reading_already_past_the_mark_makes_the_copy_fall_back_to_on_conflict(cloud) -> None:
    """Readings and the mark are only written together, so this row cannot come from ingest;
    if something else wrote it, the batch must still be stored, once, without an error."""
    ing, db, h = cloud
    _visits(h, 60)  # 360 records, 240 readings
    assert sum(1 for r in h.pending if hasattr(r, "observations")) >= STAGE_FROM
    intruder = h.pending[1]  # the first reading, seq 2
    await PartitionCache().ensure(db, [intruder.at])
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO readings (hub_id, epoch, received_ms, seq, at_ms, uid, device_id, station_id, kind, "
            "observations, status, raw) VALUES ($1, $2, 0, $3, $4, $5, 'x', 'x', 'generic', '[]', '[]', '')",
            "HP1", epoch_to_db(h.epoch), intruder.seq, intruder.at,
            reading_uid("HP1", h.epoch, intruder.seq, intruder.at))
    answer = await ing.handle(h.seal_from(1))
    assert answer.status == 200 and answer.new_readings == 239
    assert await _scalar(db, "SELECT COUNT(*) FROM readings") == 240
    assert await _scalar(db, "SELECT COUNT(DISTINCT seq) FROM readings") == 240
    assert await _scalar(db, "SELECT acked_through FROM sync_state") == 360
    assert (await ing.handle(h.seal_from(1))).status == 200  # a replay: a no-op
    assert await _scalar(db, "SELECT COUNT(*) FROM readings") == 240


async def test_stored_readings_equal_the_hub_records(cloud) -> None:
    ing, db, h = cloud
    _visits(h, 60)
    assert (await ing.handle(h.seal_from(1))).status == 200
    async with db.transaction() as tx:
        stored = {r["seq"]: r for r in await tx.fetch("SELECT * FROM readings")}
    readings = [r for r in h.pending if hasattr(r, "observations")]
    assert len(stored) == len(readings)
    for r in readings:
        row = stored[r.seq]
        assert str(row["uid"]) == reading_uid("HP1", h.epoch, r.seq, r.at)
        assert row["at_ms"] == r.at and row["raw"] == r.raw  # type: ignore[union-attr]
        as_decoded = tuple(msgspec.structs.replace(o, value=float(o.value)) for o in r.observations)  # type: ignore[union-attr]
        assert row["observations"] == msgspec.json.encode(as_decoded).decode()


@pytest.mark.parametrize("obs", [
    Observation(code="8480-6", value=120, unit="mm[Hg]"),
    Observation(code="8480-6", value=120.5, unit="mm[Hg]", flag="H"),
    Observation(code="8310-5", value=37.0, unit="Cel", original_value=98.6, original_unit="[degF]", flag="N"),
    Observation(code="x\"\\y", value=-1e300, unit="中文", original_value=0.0),
])
def test_the_stored_observation_json_is_exactly_the_model_json(obs: Observation) -> None:
    fields = msgspec.structs.astuple(obs)
    assert msgspec.json.encode([_ObsJson(*fields)]) == msgspec.json.encode([obs])
