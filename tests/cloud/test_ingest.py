"""POST /api/v1/batches on the embedded default (SQLite), over real HTTP: docs/protocol.md §2."""

from __future__ import annotations

import asyncio
import sqlite3

import aiohttp
import pytest

from cloud.db.engine import Database
from cloud.intake.importer import import_file
from cloud.intake.ingest import Ingestor, Limits
from protocol.ack import AckStatus, verify_ack
from protocol.export import write_export
from tests.cloud.support import ensure_site, hub, register_hub, serving
from tests.support.waiting import until

BATCH = {"Content-Type": "application/vnd.mchub.batch"}


async def post(http: aiohttp.ClientSession, url: str, batch: bytes) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    async with http.post(f"{url}/api/v1/batches", data=batch, headers=BATCH) as r:
        return r.status, await r.read(), r.headers


def rows(cfg, sql: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    with sqlite3.connect(cfg.database.url.removeprefix("sqlite:///")) as con:
        return con.execute(sql).fetchall()


async def q(cfg, sql: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    db = await Database.connect(cfg.database.url)
    try:
        async with db.transaction() as tx:
            return [tuple(r) for r in await tx.fetch(sql)]
    finally:
        await db.close()


async def test_a_visit_is_stored_once_and_a_replay_is_a_counted_audited_no_op(any_cloud) -> None:
    from protocol.model import Reading, ReadingBound, SessionOpened

    cfg, keys = any_cloud
    h = hub(keys, "H001")
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H001", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        visit = h.add_visit()
        batch = h.seal_from(1)
        status, body, _ = await post(http, url, batch)
        assert status == 200
        ack = verify_ack(body, keys.signing.public_key(), batch)
        assert (ack.status, ack.acked_through_seq) == (AckStatus.STORED, 6)
        status, body, _ = await post(http, url, batch)  # the same bytes again: a replay
        assert status == 200
        assert verify_ack(body, keys.signing.public_key(), batch).status is AckStatus.DUPLICATE
        # staff bind the unbound reading (a child's weight) to the session later on the hub
        unbound = next(r for r in visit if isinstance(r, Reading) and r.session_id is None)
        session = next(r.session_id for r in visit if isinstance(r, SessionOpened))
        from protocol.ids import reading_uid

        h.pending.append(ReadingBound(hub_id="H001", epoch=h.epoch, seq=7, at=unbound.at + 1,
                                      reading_uid=reading_uid("H001", h.epoch, unbound.seq, unbound.at),
                                      session_id=session, by="nurse.li"))
        h.next_seq = 8
        assert (await post(http, url, h.seal_from(7)))[0] == 200
    assert await q(cfg, "SELECT COUNT(*) FROM readings") == [(4,)]
    assert await q(cfg, "SELECT COUNT(*), COUNT(closed_ms) FROM sessions") == [(1, 1)]
    assert await q(cfg, "SELECT COUNT(*) FROM readings WHERE session_id IS NULL") == [(0,)]
    assert await q(cfg, "SELECT bound_by FROM reading_bindings") == [("nurse.li",)]
    assert await q(cfg, "SELECT acked_through, duplicates, records FROM sync_state") == [(7, 1, 7)]
    # change-feed rows: read by the MCH assembler, never delivered, so never waiting in a queue
    assert await q(cfg, "SELECT topic, status FROM outbox ORDER BY id") == [
        ("visit.closed", "done"), ("visit.updated", "done")]
    assert await q(cfg, "SELECT action, hub_id FROM audit_log WHERE action LIKE 'batch.%'") == [
        ("batch.duplicate", "H001")]
    assert await q(cfg, "SELECT COUNT(*) FROM stations") == [(1,)]


async def test_a_gap_is_answered_409_with_the_expected_seq_and_the_hub_catches_up(any_cloud) -> None:
    cfg, keys = any_cloud
    h = hub(keys, "H002")
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H002", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        for _ in range(3):
            h.add_visit()
        later = h.seal_from(7)  # records 7..18 before 1..6
        status, body, _ = await post(http, url, later)
        assert status == 409
        ack = verify_ack(body, keys.signing.public_key(), later)
        assert (ack.status, ack.expected_seq) == (AckStatus.GAP, 1)
        first = h.seal_from(1, limit=9)  # 1..9, then an overlapping 4..18 stores only 10..18
        assert (await post(http, url, first))[0] == 200
        status, body, _ = await post(http, url, h.seal_from(4))
        assert status == 200 and verify_ack(body, keys.signing.public_key()).acked_through_seq == 18
    assert await q(cfg, "SELECT COUNT(*), COUNT(DISTINCT seq) FROM readings") == [(12, 12)]
    assert await q(cfg, "SELECT acked_through, records FROM sync_state") == [(18, 18)]
    assert await q(cfg, "SELECT action, reason FROM audit_log WHERE action = 'batch.gap'") == [("batch.gap", "gap")]


async def test_oversize_is_413_and_garbage_is_400_malformed_with_an_audit_entry(tmp_path) -> None:
    """Unproven senders' refusals, the 413 included, are audited as aggregated tally rows."""
    from prometheus_client import REGISTRY

    from tests.cloud.support import make_cloud

    cfg, keys = make_cloud(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", max_batch_bytes=3000)
    h = hub(keys, "H003")
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H003", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        for _ in range(20):
            h.add_visit()
        too_large = REGISTRY.get_sample_value("mchub_rejects_total", {"reason": "too_large"}) or 0.0
        malformed = REGISTRY.get_sample_value("mchub_rejects_total", {"reason": "malformed"}) or 0.0
        status, body, _ = await post(http, url, h.seal_from(1))
        assert status == 413 and b'"too_large"' in body
        # refused by the body cap before it was read, and counted like the ingest's own refusals
        assert REGISTRY.get_sample_value("mchub_rejects_total", {"reason": "too_large"}) == too_large + 1
        status, body, _ = await post(http, url, b"MCHB" + b"\x00" * 100)
        assert status == 400 and b'"unsupported_version"' in body
        status, body, _ = await post(http, url, b"hello")
        assert status == 400 and b'"malformed"' in body
        async with http.get(f"{url}/metrics") as r:
            text = await r.text()
        assert f'mchub_rejects_total{{reason="malformed"}} {malformed + 1}' in text  # this process's counters
    tally = rows(cfg, "SELECT action, reason FROM audit_log WHERE action = 'refusal.tally'")
    assert sorted(tally) == [("refusal.tally", r) for r in ("malformed", "too_large", "unsupported_version")]


async def _until(condition) -> None:  # type: ignore[no-untyped-def]
    await until(condition, "the condition", interval=0.01)


async def test_overload_is_503_with_retry_after(sqlite_cloud) -> None:
    cfg, keys = sqlite_cloud
    h = hub(keys, "H004")
    db = await Database.connect(cfg.database.url)
    from cloud.db.migrations import migrate

    await migrate(db)
    await ensure_site(cfg, "S1")
    await register_hub(cfg, "H004", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
    ing = Ingestor(db, keys, Limits(max_inflight=1, max_queue=1, retry_after_s=7))
    h.add_visit()
    batch = h.seal_from(1)
    blocker = sqlite3.connect(cfg.database.url.removeprefix("sqlite:///"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the database is busy: the first batch waits inside its slot
    first = asyncio.create_task(ing.handle(batch))
    await _until(ing._slots.locked)
    second = asyncio.create_task(ing.handle(batch))
    await _until(lambda: ing._waiting >= 1)
    third = await ing.handle(batch)
    assert third.status == 503 and third.headers == {"Retry-After": "7"}
    blocker.execute("ROLLBACK")
    assert [(await first).status, (await second).status] == [200, 200]
    await db.close()


async def test_a_hand_carried_export_imports_through_the_same_path(sqlite_cloud, tmp_path) -> None:
    cfg, keys = sqlite_cloud
    h = hub(keys, "H005")
    db = await Database.connect(cfg.database.url)
    from cloud.db.migrations import migrate

    await migrate(db)
    await ensure_site(cfg, "S1")
    await register_hub(cfg, "H005", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
    h.add_visit()
    h.add_visit()
    path = tmp_path / "H005.mchx"
    path.write_bytes(write_export([h.seal_from(1, limit=6), h.seal_from(7)]))
    ing = Ingestor(db, keys)
    report = await import_file(ing, path)
    assert (report.batches, report.readings, dict(report.outcomes)) == (2, 8, {"200": 2})
    again = await import_file(ing, path)  # importing twice is harmless
    assert (again.readings, dict(again.outcomes)) == (0, {"200": 2})
    await db.close()
    assert rows(cfg, "SELECT COUNT(*) FROM readings") == [(8,)]
    assert rows(cfg, "SELECT actor FROM audit_log WHERE action = 'batch.duplicate' LIMIT 1") == [("import:H005",)]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/openapi.json", "/api/v1/keys"])
async def test_service_endpoints_answer(sqlite_cloud, path: str) -> None:
    cfg, _ = sqlite_cloud
    async with serving(cfg) as url, aiohttp.ClientSession() as http, http.get(url + path) as r:
        assert r.status == 200
        assert await r.json()


async def test_a_bad_record_is_refused_alone_the_rest_is_stored_and_a_resend_answers_the_same(any_cloud) -> None:
    """Issue 17 finding 2: one record that does not validate no longer refuses its batch (400
    for ever): the rest is stored, the ack names it with a reason code, the cloud keeps it."""
    from protocol.codes import IMPEDANCE
    from protocol.model import Observation, Reading

    cfg, keys = any_cloud
    h = hub(keys, "H006")
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H006", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        h.add_visit()  # seqs 1..6

        def reading(seq: int, code: str, value: float, unit: str, kind: str = "blood_pressure") -> Reading:
            return Reading(hub_id="H006", epoch=h.epoch, seq=seq, at=h.pending[-1].at + seq, device_id="bp",
                           station_id="ST1", kind=kind,  # type: ignore[arg-type]
                           observations=(Observation(code=code, value=value, unit=unit),))

        h.pending += [reading(7, "8480-6", 120, "mmHg"),  # not the canonical unit
                      reading(8, IMPEDANCE, 512.3, "Ohm", "body_composition"),  # what the BLE scale sends
                      reading(9, "mchub-no-such-code", 1, "1"),
                      reading(10, "8480-6", 121, "mm[Hg]")]
        h.next_seq = 11
        batch = h.seal_from(1)
        status, body, _ = await post(http, url, batch)
        assert status == 200, body
        ack = verify_ack(body, keys.signing.public_key(), batch)
        assert (ack.status, ack.acked_through_seq) == (AckStatus.STORED, 10)
        assert ack.refused == ((7, "wrong_unit"), (9, "unknown_code"))
        status, body, _ = await post(http, url, batch)  # a resend: the same answer, nothing stored twice
        again = verify_ack(body, keys.signing.public_key(), batch)
        assert (status, again.status, again.refused) == (200, AckStatus.DUPLICATE, ack.refused)
        overlap = h.seal_from(7)  # a batch overlapping the mark names the refusals it holds too
        third = verify_ack((await post(http, url, overlap))[1], keys.signing.public_key(), overlap)
        assert third.refused == ack.refused
    assert await q(cfg, "SELECT seq FROM readings ORDER BY seq") == [(2,), (3,), (4,), (5,), (8,), (10,)]
    assert await q(cfg, "SELECT seq, record_type, reason FROM refused_records ORDER BY seq") == [
        (7, "reading", "wrong_unit"), (9, "reading", "unknown_code")]
    assert await q(cfg, "SELECT acked_through, records FROM sync_state") == [(10, 10)]
    assert await q(cfg, "SELECT COUNT(*) FROM audit_log WHERE action = 'record.refused'") == [(1,)]


async def test_a_batch_that_does_not_open_is_still_refused_whole(sqlite_cloud) -> None:
    cfg, keys = sqlite_cloud
    h = hub(keys, "H009")
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H009", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))

        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H006", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        h.add_visit()
        batch = bytearray(h.seal_from(1))
        batch[-70] ^= 1  # inside the ciphertext or signature
        status, _, _ = await post(http, url, bytes(batch))
        assert status in (400, 401)
    assert rows(cfg, "SELECT COUNT(*) FROM readings") == [(0,)]
    assert rows(cfg, "SELECT COUNT(*) FROM refused_records") == [(0,)]


async def test_no_national_id_in_plaintext_in_the_sqlite_files(sqlite_cloud) -> None:
    from pathlib import Path

    cfg, keys = sqlite_cloud
    h = hub(keys, "H007")
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H007", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        ids = [next(r.subject.national_id for r in h.add_visit() if hasattr(r, "subject")) for _ in range(3)]
        assert (await post(http, url, h.seal_from(1)))[0] == 200
    files = list(Path(cfg.database.url.removeprefix("sqlite:///")).parent.glob("cloud.db*"))
    assert files
    for f in files:
        data = f.read_bytes()
        assert not [n for n in ids if n.encode() in data], f


@pytest.mark.postgres
async def test_large_batches_take_the_copy_path_and_still_skip_what_is_stored(pg_cloud) -> None:
    from cloud.db.pg_ingest import STAGE_FROM

    cfg, keys = pg_cloud
    h = hub(keys, "H008")
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H008", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        for _ in range(70):
            h.add_visit()  # 420 records, 280 readings
        assert (await post(http, url, h.seal_from(1, limit=180)))[0] == 200  # 120 readings: arrays
        big = h.seal_from(100)  # 321 records overlapping the mark, >= STAGE_FROM readings: COPY
        assert sum(1 for r in h.pending[99:] if hasattr(r, "observations")) >= STAGE_FROM
        status, body, _ = await post(http, url, big)
        assert status == 200 and verify_ack(body, keys.signing.public_key()).acked_through_seq == 420
        assert (await post(http, url, big))[0] == 200  # and once more: a duplicate
    assert await q(cfg, "SELECT COUNT(*), COUNT(DISTINCT seq), MAX(seq) FROM readings") == [(280, 280, 419)]
    assert await q(cfg, "SELECT COUNT(*) FROM outbox") == [(70,)]
    assert await q(cfg, "SELECT records, duplicates FROM sync_state") == [(420, 1)]


@pytest.mark.postgres
async def test_a_large_batch_on_the_copy_path_refuses_one_record_alone(pg_cloud) -> None:
    import msgspec

    from protocol.model import Observation, Reading

    cfg, keys = pg_cloud
    h = hub(keys, "H010")
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "H010", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        for _ in range(70):
            h.add_visit()  # 420 records, 280 readings
        i, bad = next((i, r) for i, r in enumerate(h.pending) if i > 250 and isinstance(r, Reading))
        h.pending[i] = msgspec.structs.replace(bad, observations=(Observation(code="8310-5", value=98.6,
                                                                              unit="[degF]"),))
        assert (await post(http, url, h.seal_from(1, limit=180)))[0] == 200  # arrays, nothing refused
        big = h.seal_from(100)  # overlapping the mark, >= STAGE_FROM readings: COPY
        status, body, _ = await post(http, url, big)
        ack = verify_ack(body, keys.signing.public_key(), big)
        assert (status, ack.acked_through_seq, ack.refused) == (200, 420, ((bad.seq, "wrong_unit"),))
        status, body, _ = await post(http, url, big)  # a duplicate names it again
        assert verify_ack(body, keys.signing.public_key(), big).refused == ack.refused
    assert await q(cfg, "SELECT COUNT(*), COUNT(DISTINCT seq) FROM readings") == [(279, 279)]
    assert await q(cfg, "SELECT seq, reason FROM refused_records") == [(bad.seq, "wrong_unit")]
    assert await q(cfg, "SELECT acked_through, records, duplicates FROM sync_state") == [(420, 420, 1)]


def test_the_openapi_document_describes_every_route(sqlite_cloud) -> None:
    from cloud.server.app import build_app
    from cloud.server.openapi import document

    cfg, _ = sqlite_cloud
    doc = document()
    from starlette.routing import Route  # the web pages (Mounts, the / redirect) are not API: not in the schema

    routes = {(r.path, m.lower()) for r in build_app(cfg).routes if isinstance(r, Route) and r.include_in_schema
              for m in (r.methods or []) if m != "HEAD"}
    described = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert routes == described - {("/dicomweb/studies", "post"), ("/dicomweb/studies/{study}", "post")}
    # (STOW-RS is served only with [dicom] enabled: tests/cloud/test_exposure.py compares that table)


def test_the_openapi_document_lists_every_refusal_reason_and_status() -> None:
    from cloud.intake.ingest import _STATUS
    from cloud.server.openapi import document

    batches = document()["paths"]["/api/v1/batches"]["post"]["responses"]
    assert set(document()["components"]["schemas"]["Refusal"]["properties"]["reason"]["enum"]) == set(_STATUS)
    assert {str(s) for s in _STATUS.values()} <= set(batches)
    assert "Retry-After" in batches["503"]["headers"]
