"""Hand-carried export files (cloud/intake/importer.py, docs/protocol.md §7) against online sync over
real HTTP, on SQLite and PostgreSQL: either order stores every reading exactly once, and a
tampered or damaged file is refused with a reason and an audit entry."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from cloud.config import CloudConfig
from cloud.db.engine import Database
from cloud.errors import ImportFileError
from cloud.intake.importer import import_file
from cloud.intake.ingest import Ingestor
from firmware_sim.fleet import VirtualHub
from protocol.envelope import parse_header
from protocol.export import write_export
from tests.cloud.support import ensure_site, hub, register_hub, serving


@pytest.fixture
async def online(any_cloud) -> AsyncIterator[tuple[str, Ingestor, Database, VirtualHub]]:  # type: ignore[no-untyped-def]
    """The cloud serving HTTP, an Ingestor for imports on the same database, one enrolled hub."""
    cfg, keys = any_cloud
    h = hub(keys, "HX1")
    async with serving(cfg) as url:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "HX1", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        db = await Database.connect(cfg.database.url)
        try:
            yield url, Ingestor(db, keys), db, h
        finally:
            await db.close()


async def _counts(db: Database) -> tuple[int, int, int]:
    """(readings, distinct seqs, the hub's mark)."""
    async with db.transaction() as tx:
        row = await tx.fetchrow("SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS d FROM readings")
        mark = await tx.fetchval("SELECT MAX(acked_through) FROM sync_state WHERE hub_id = 'HX1'")
    return int(row["n"]), int(row["d"]), int(mark or 0)


def _export(h: VirtualHub, path: Path, per_batch: int = 6) -> Path:
    """What `mchub edge export` writes: the unacknowledged records, sealed, in an export file."""
    last = h.pending[-1].seq
    path.write_bytes(write_export([h.seal_from(s, per_batch) for s in range(h.acked + 1, last + 1, per_batch)]))
    return path


async def test_import_then_sync_online_stores_each_reading_once(online, tmp_path: Path) -> None:
    url, ing, db, h = online
    for _ in range(3):
        h.add_visit()  # 18 records, 12 readings
    report = await import_file(ing, _export(h, tmp_path / "HX1.mchx"))
    assert (report.batches, report.readings, dict(report.outcomes), report.problem) == (3, 12, {"200": 3}, None)
    async with aiohttp.ClientSession() as http:
        assert await h.sync(http, url) == 200  # the hub never learned of the import: it sends all again
        assert h.acked == 18 and await _counts(db) == (12, 12, 18)
        h.add_visit()
        assert await h.sync(http, url) == 200
    assert await _counts(db) == (16, 16, 24)


async def test_sync_online_then_import_the_same_records_stores_nothing(online, tmp_path: Path) -> None:
    url, ing, db, h = online
    for _ in range(2):
        h.add_visit()
    path = _export(h, tmp_path / "HX1.mchx")  # exported while offline...
    async with aiohttp.ClientSession() as http:
        assert await h.sync(http, url) == 200  # ...then the network came back
    report = await import_file(ing, path)
    assert (report.readings, dict(report.outcomes)) == (0, {"200": 2})
    assert await _counts(db) == (8, 8, 12)
    async with db.transaction() as tx:
        actors = [r["actor"] for r in await tx.fetch("SELECT actor FROM audit_log WHERE action = 'batch.duplicate'")]
    assert actors == ["import:HX1", "import:HX1"]


async def test_a_tampered_file_is_refused_and_audited(online, tmp_path: Path) -> None:
    _, ing, db, h = online
    for _ in range(2):
        h.add_visit()
    path = _export(h, tmp_path / "HX1.mchx")
    data = bytearray(path.read_bytes())
    first = parse_header(bytes(data[12:12 + int.from_bytes(data[8:12], "big")]))
    data[12 + first.header_len + 40] ^= 1  # one bit inside the first batch's sealed body
    path.write_bytes(bytes(data))
    report = await import_file(ing, path)
    assert dict(report.outcomes) == {"401 bad_signature": 1, "409": 1}  # the second one now starts past the mark
    assert await _counts(db) == (0, 0, 0)
    async with db.transaction() as tx:
        audit = [tuple(r) for r in await tx.fetch(
            "SELECT actor, reason FROM audit_log WHERE outcome = 'refused' ORDER BY id")]
    assert audit == [("import:HX1.mchx", "bad_signature"), ("import:HX1", "gap")]


async def test_a_truncated_file_imports_its_intact_batches_and_reports_the_damage(online, tmp_path: Path) -> None:
    _, ing, db, h = online
    for _ in range(2):
        h.add_visit()
    path = _export(h, tmp_path / "HX1.mchx")
    path.write_bytes(path.read_bytes()[:-10])
    report = await import_file(ing, path)
    assert (report.batches, report.readings, dict(report.outcomes)) == (1, 4, {"200": 1})
    assert report.problem is not None and "truncated" in report.problem
    assert await _counts(db) == (4, 4, 6)


@pytest.mark.parametrize(("content", "message"), [
    (b"PK\x03\x04 a zip file", "bad magic"),
    (b"MCHB", "bare sealed batch"),
    (b"MCHX\x02\x00\x00\x00", "version 2"),
])
async def test_files_that_are_not_export_files_are_refused(sqlite_cloud: tuple[CloudConfig, object],
                                                           tmp_path: Path, content: bytes, message: str) -> None:
    cfg, keys = sqlite_cloud
    db = await Database.connect(cfg.database.url)
    try:
        (tmp_path / "x.mchx").write_bytes(content)
        with pytest.raises(ImportFileError, match=message):
            await import_file(Ingestor(db, keys), tmp_path / "x.mchx")  # type: ignore[arg-type]
    finally:
        await db.close()


async def test_an_imported_file_with_a_bad_record_stores_the_rest_and_the_hub_learns_of_it_later(
        online, tmp_path: Path) -> None:
    """Issue 17 finding 2 through the hand-carried path: the refusal is kept, and the hub's next
    (duplicate) sync gets an ack naming it."""
    import msgspec

    from protocol.ack import verify_ack
    from protocol.model import Observation, Reading

    url, ing, db, h = online
    h.add_visit()
    i = next(i for i, r in enumerate(h.pending) if isinstance(r, Reading))
    h.pending[i] = msgspec.structs.replace(h.pending[i], observations=(
        Observation(code="mchub-no-such-code", value=1.0, unit="1"),))
    report = await import_file(ing, _export(h, tmp_path / "HX1.mchx"))
    assert (report.readings, report.refused, dict(report.outcomes)) == (3, 1, {"200": 1})
    async with aiohttp.ClientSession() as http:
        batch = h.seal_from(1)
        async with http.post(f"{url}/api/v1/batches", data=batch,
                             headers={"Content-Type": "application/vnd.mchub.batch"}) as r:
            ack = verify_ack(await r.read(), h.cloud.signing, batch)
    assert ack.refused == ((h.pending[i].seq, "unknown_code"),)  # the hub now moves it to its dead-letter list
    assert await _counts(db) == (3, 3, 6)
