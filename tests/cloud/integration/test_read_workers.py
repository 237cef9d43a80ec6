"""Reader processes of the HL7 processor (cloud/integration/read_workers.py): they read what the
processor would, a dead one is replaced without losing its batch, they leave with the processor,
and processing through them writes the same rows (PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import msgspec

from bench.bench_mllp import messages
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.integration.hl7_read import Item, read_message
from cloud.integration.inbound import Hl7Processor
from cloud.integration.read_workers import ReadWorkers
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.processing import Processed
from cloud.mllp.store import InboundMeta, StoredMessage
from cloud.records.crypto_at_rest import AtRest
from firmware_sim.his import MALFORMED, adt_message, lab_message
from protocol.hl7.message import parse_header
from tests.cloud.integration.conftest import CODES

KEYS = (b"e" * 32, b"b" * 32)
ROOT = Path(__file__).resolve().parents[3]


def stored(raws: list[bytes]) -> list[StoredMessage]:
    return [StoredMessage(f"uid-{i}", raw, 0, "", "") for i, raw in enumerate(raws)]


def same(item: Item, mine: Item) -> None:
    """What a reader process sent equals what the processor reads itself (its results as rows only)."""
    assert item.message == mine.message
    assert [r[:-2] + r[-1:] for r in item.rows] == [r[:-2] + r[-1:] for r in mine.rows]  # all but created_ms
    assert (item.patient_index, item.name_index) == (mine.patient_index, mine.name_index)
    if isinstance(mine.processed, Processed):
        assert item.processed == msgspec.structs.replace(mine.processed, results=())
    else:
        assert (item.processed.reason, str(item.processed)) == (mine.processed.reason, str(mine.processed))


def reader_pids(readers: ReadWorkers) -> list[int]:
    return list(readers._pool._processes or {})  # the test kills them


async def test_readers_read_what_the_processor_reads_and_a_dead_one_is_replaced() -> None:
    batch = stored([*messages(40, "T"), adt_message(3, "A40"), *MALFORMED.values()])
    at_rest = AtRest(*KEYS)
    mine = [read_message(m, CODES, at_rest) for m in batch]
    readers = ReadWorkers(CODES, *KEYS, workers=1)
    try:
        items = await readers.submit(batch)
        assert len(items) == len(batch)
        for item, own in zip(items, mine, strict=True):
            same(item, own)
        assert sum(not isinstance(i.processed, Processed) for i in items) >= len(MALFORMED) - 1
        [pid] = reader_pids(readers)
        os.kill(pid, signal.SIGKILL)
        await asyncio.sleep(0.2)
        for item, own in zip(await readers.submit(batch), mine, strict=True):  # read here, a new reader started
            same(item, own)
        for item, own in zip(await readers.submit(batch), mine, strict=True):  # by the new reader
            same(item, own)
        assert reader_pids(readers) and pid not in reader_pids(readers)
    finally:
        readers.close()


def test_readers_leave_when_the_processor_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "processor.py"
    script.write_text(textwrap.dedent(f"""
        import asyncio, sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from cloud.integration.read_workers import ReadWorkers
        from cloud.mllp.store import StoredMessage
        from protocol.hl7.codemap import CodeMap

        async def main():
            readers = ReadWorkers(CodeMap(), b"e" * 32, b"b" * 32, workers=2)
            await readers.submit([StoredMessage("u", b"MSH|^~\\\\&|A|B|C|D|2026||ORU^R01|1|P|2.5.1\\r", 0, "", "")])
            print(*readers._pool._processes, flush=True)
            time.sleep(60)

        if __name__ == "__main__":  # reader processes are spawned: they import this file again
            asyncio.run(main())
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert pids and all(Path(f"/proc/{p}").exists() for p in pids)
        proc.kill()  # SIGKILL: nothing runs in it any more
        proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids)
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _process(dsn: str, raws: list[bytes], readers: ReadWorkers | None) -> list[tuple[object, ...]]:
    db = await Database.connect(dsn, 4)
    await migrate(db)
    at_rest = AtRest(*KEYS)
    store = Hl7Store(db, at_rest)
    try:
        for i, raw in enumerate(raws):
            h = parse_header(raw)
            await store.store(raw, InboundMeta(received_at=1_790_000_000_000 + i, peer="test", status="accepted",
                                               ack_code="AA", sender=h.sender, control_id=h.control_id,
                                               message_type=f"{h.message_type}^{h.trigger_event}"))
        processor = Hl7Processor(db, store, at_rest, CODES, readers)
        while await processor.run_once(limit=50, batch=20):
            pass
        async with db.transaction() as tx:
            rows = await tx.fetch("SELECT r.subject_id IS NULL AS unmatched, r.kind, r.code, r.value, r.unit, "
                                  "r.observed_ms, r.payload, h.control_id FROM results r JOIN hl7_inbound h "
                                  "ON r.origin = 'hl7:' || h.uid ORDER BY r.id")
            marks = await tx.fetch("SELECT control_id, process_error IS NULL AS ok, patient_index, name_index "
                                   "FROM hl7_inbound ORDER BY id")
            waiting = await tx.fetchval("SELECT count(*) FROM unmatched WHERE status = 'waiting'")
        return [tuple(r) for r in rows] + [tuple(m) for m in marks] + [(waiting,)]
    finally:
        await store.close()
        await db.close()


async def test_processing_through_readers_writes_what_processing_without_them_does(pg_dsn: str) -> None:
    raws = [*messages(60, "P"), lab_message(5), adt_message(6, "A04"), adt_message(6, "A40"),
            MALFORMED["not numeric"], *messages(30, "Q")]
    without = await _process(pg_dsn, raws, None)
    db = await Database.connect(pg_dsn, 1)
    async with db.transaction() as tx:  # a fresh schema for the second run
        await tx.execute("DROP SCHEMA public CASCADE")
        await tx.execute("CREATE SCHEMA public")
    await db.close()
    readers = ReadWorkers(CODES, *KEYS, workers=1)
    try:
        with_readers = await _process(pg_dsn, raws, readers)
    finally:
        readers.close()
    assert len(without) > 400 and with_readers == without
