"""A hub's batches sent ahead on parallel connections (edge ``batches_in_flight``): docs/protocol.md §2.1.

The batches of a window reach one worker in any order; the worker stores them in seq order
(each waits for the earlier ones in progress) instead of answering 409, and a batch refused
inside the window leaves the ones behind it unstored (409) until the hub resends from it.
"""

from __future__ import annotations

from cloud.db.engine import Database
from cloud.intake.ingest import Ingestor
from protocol.ack import AckStatus, verify_ack
from tests.cloud.support import ensure_site, hub, register_hub


async def _ingestor(cfg, keys, hub_id: str, public_key: str) -> tuple[Database, Ingestor]:  # type: ignore[no-untyped-def]
    from cloud.db.migrations import migrate

    db = await Database.connect(cfg.database.url)
    try:
        await migrate(db)
    finally:
        await db.close()
    await ensure_site(cfg, "S1")
    await register_hub(cfg, hub_id, site_id="S1", public_key=bytes.fromhex(public_key))
    db = await Database.connect(cfg.database.url)
    return db, Ingestor(db, keys)


async def test_a_window_arriving_last_batch_first_is_stored_in_seq_order_without_a_409(any_cloud) -> None:
    import asyncio

    cfg, keys = any_cloud
    h = hub(keys, "H021")
    for _ in range(8):
        h.add_visit()  # 48 records: four batches of 12
    batches = [h.seal_from(first, limit=12) for first in (1, 13, 25, 37)]
    db, ing = await _ingestor(cfg, keys, "H021", h.public_key_hex)
    try:
        answers = await asyncio.gather(*(ing.handle(b) for b in reversed(batches)))  # type: ignore[arg-type]
        assert [a.status for a in answers] == [200, 200, 200, 200]
        acks = [verify_ack(a.body, keys.signing.public_key()) for a in reversed(answers)]
        assert [(a.status, a.acked_through_seq) for a in acks] == [(AckStatus.STORED, n) for n in (12, 24, 36, 48)]
        assert [tuple(r) for r in await db.fetch("SELECT COUNT(*), COUNT(DISTINCT seq) FROM readings")] == [(32, 32)]
        assert [tuple(r) for r in await db.fetch("SELECT acked_through, records FROM sync_state")] == [(48, 48)]
        assert not await db.fetch("SELECT 1 FROM audit_log WHERE action = 'batch.gap'")
    finally:
        await db.close()


async def test_a_batch_refused_inside_the_window_holds_back_the_rest_until_the_hub_resends(any_cloud) -> None:
    import asyncio

    cfg, keys = any_cloud
    h = hub(keys, "H022")
    for _ in range(6):
        h.add_visit()  # 36 records: three batches of 12
    batches = [h.seal_from(first, limit=12) for first in (1, 13, 25)]
    assert all(batches)
    tampered = bytearray(batches[1])  # type: ignore[arg-type]
    tampered[-40] ^= 1
    db, ing = await _ingestor(cfg, keys, "H022", h.public_key_hex)
    try:
        window = [batches[0], bytes(tampered), batches[2]]
        answers = await asyncio.gather(*(ing.handle(b) for b in reversed(window)))  # type: ignore[arg-type]
        assert [a.status for a in reversed(answers)] == [200, 401, 409]  # 401: the signature no longer holds
        gap = verify_ack(answers[0].body, keys.signing.public_key())
        assert (gap.status, gap.expected_seq) == (AckStatus.GAP, 13)  # the hub resends from 13
        answers = await asyncio.gather(*(ing.handle(b) for b in batches[1:]))  # type: ignore[arg-type]
        assert [a.status for a in answers] == [200, 200]
        assert [tuple(r) for r in await db.fetch("SELECT COUNT(*), COUNT(DISTINCT seq) FROM readings")] == [(24, 24)]
        assert [tuple(r) for r in await db.fetch("SELECT acked_through, records FROM sync_state")] == [(36, 36)]
    finally:
        await db.close()
