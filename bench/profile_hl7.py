"""Profile HL7 processing in-process: where does a message's time go between ``hl7_inbound`` and ``results``?

    .venv/bin/python -m bench.profile_hl7                    # timing, cProfile top functions, hot statements
    .venv/bin/python -m bench.profile_hl7 --messages 4000 --top 40

It starts a throwaway durable PostgreSQL with ``pg_stat_statements``, stores the
benchmark's message mix (bench/bench_mllp.py: fixtures and generated screening results,
sealed at rest) through :class:`~cloud.mllp.db_store.Hl7Store`, then runs
:meth:`cloud.integration.inbound.Hl7Processor.run_once` under cProfile until the backlog is
gone. Prints msgs/s, this process's and PostgreSQL's CPU per message, the functions with
the most own time, and the statements with the most total time. docs/hl7.md records what
the profiles showed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.bench_ingest import _postmaster_pid, _tree_cpu_s
from bench.bench_mllp import messages
from bench.common import machine
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.intake.keystore import init_keys
from cloud.integration.hl7_process import tune_gc
from cloud.integration.inbound import BATCH, Hl7Processor
from cloud.integration.read_workers import ReadWorkers, default_workers
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.store import InboundMeta
from cloud.records.crypto_at_rest import AtRest
from protocol.hl7.codemap import CodeMap
from protocol.hl7.message import parse
from tests.support.services import PostgresServer

_TOP_STATEMENTS = ("SELECT calls, round(total_exec_time::numeric, 1) AS ms, rows, left(regexp_replace(query, "
                   "'\\s+', ' ', 'g'), 110) AS q FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12")


async def _store(store: Hl7Store, msgs: list[bytes]) -> None:
    """Store ``msgs`` as the listener would (accepted, with their header fields)."""
    for i in range(0, len(msgs), 200):
        futures = []
        for raw in msgs[i:i + 200]:
            h = parse(raw).header
            meta = InboundMeta(received_at=int(time.time() * 1000), peer="127.0.0.1", status="accepted",
                               ack_code="AA", sender=h.sender,
                               control_id=h.control_id, message_type=h.message_type)
            futures.append(store.submit(raw, meta))
        await asyncio.gather(*futures)


async def run(args: argparse.Namespace, pg: PostgresServer, base: Path) -> None:
    dsn = pg.dsn("profile")
    keys = init_keys(base / "keys")
    db = await Database.connect(dsn, 4)
    await migrate(db)
    await db.fetch("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    at_rest = AtRest(keys.at_rest, keys.blind_index)
    store = Hl7Store(db, at_rest)
    codes = CodeMap.from_config({"L": {"HPV16": "59263-4", "TCT": "10524-7"}})
    readers = ReadWorkers(codes, keys.at_rest, keys.blind_index, args.readers) if args.readers else None
    processor = Hl7Processor(db, store, at_rest, codes, readers)
    await _store(store, messages(200, "W"))
    while await processor.run_once():  # warm-up: caches, prepared statements
        pass
    await _store(store, messages(args.messages, "P"))
    tune_gc()  # as the processor's own process runs
    await db.fetch("SELECT pg_stat_statements_reset()")
    pg_pid = _postmaster_pid(pg)
    prof = cProfile.Profile() if args.top else None
    pg0, wall0, cpu0 = _tree_cpu_s(pg_pid), time.perf_counter(), time.process_time()
    own0 = _tree_cpu_s(os.getpid())  # with its reader processes
    if prof is not None:
        prof.enable()
    done = 0
    while n := await processor.run_once(BATCH * 5):  # as Hl7Processor.run does
        done += n
    if prof is not None:
        prof.disable()
    wall, cpu, pg_cpu = time.perf_counter() - wall0, time.process_time() - cpu0, _tree_cpu_s(pg_pid) - pg0
    own = _tree_cpu_s(os.getpid()) - own0
    print(f"machine: {machine()}")
    print(f"{done} messages processed in {wall:.2f} s: {done / wall:.0f} msgs/s"
          f"{' (under cProfile)' if prof else ''}; this process {cpu / done * 1e6:.0f} µs CPU/msg "
          f"({own / done * 1e6:.0f} with its {args.readers} reader processes), "
          f"PostgreSQL {pg_cpu / done * 1e6:.0f} µs CPU/msg")
    if prof is not None:
        pstats.Stats(prof).sort_stats("tottime").print_stats(args.top)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(args.top)
    for r in await db.fetch(_TOP_STATEMENTS):
        print(f"{r['calls']:6} calls {float(r['ms']):9.1f} ms {r['rows']:8} rows  {r['q']}")
    con = await asyncpg.connect(dsn)  # the hot INSERT's plan: the same rows again under new keys, rolled back
    rollback = con.transaction()
    await rollback.start()
    columns = "kind, code, value, unit, observed_ms, payload, created_ms, origin"
    plan = await con.fetch(f"EXPLAIN (ANALYZE, BUFFERS) INSERT INTO results (subject_id, source, source_key, {columns})"
                           f" SELECT subject_id, source, 'again:' || source_key, {columns} FROM results "
                           "ON CONFLICT (source_key) DO NOTHING")
    print("\n".join(r[0] for r in plan))
    await rollback.rollback()
    await con.close()
    await store.close()
    await db.close()
    if readers is not None:
        readers.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--readers", type=int, default=default_workers(),
                    help="reader processes (cloud.integration.read_workers; 0: read in the processor)")
    ap.add_argument("--top", type=int, default=30, help="functions to list (0: no cProfile, timing only)")
    args = ap.parse_args()
    pg = PostgresServer(durable=True).start()
    try:
        pg._run("psql", "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres", "-q", "-c",
                "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        pg.stop()
        pg.start()
        pg.create_database("profile")
        with tempfile.TemporaryDirectory(prefix="profile-hl7-") as tmp:
            asyncio.run(run(args, pg, Path(tmp)))
    finally:
        pg.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
