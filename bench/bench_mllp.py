"""MLLP ingest per worker: parse + durable store (PostgreSQL, group commit) + ACK over real sockets.

One listener (= the cloud's integration owner, this process) storing through the cloud's
own path — ``cloud.mllp.db_store.Hl7Store`` on the cloud ``Database`` (asyncpg pool), the
migrated schema (``hl7_inbound`` of migration 4) — into PostgreSQL running with fsync and
synchronous_commit ON, messages sealed with the cloud's at-rest key (AES-256-GCM). Optionally
(``--process``) the HL7 processor turns them into ``results`` rows afterwards and its rate
is printed too. A load generator in a separate process keeps
``--connections`` persistent MLLP connections busy, each sending its next message as soon
as the previous ACK arrives. Every ACK is checked (AA/CA) and the stored row count
verified afterwards. Messages: the three fixture files and generated screening
results, each with a unique MSH-10.

Baselines in the same run: python-hl7's ``hl7.parse`` on the same messages (a plain
pipe-and-hat split, about the least work any receiver does), our parser alone, and the
same ingest without group commit (one commit per message). To compare two versions of
the code, run this file against each (e.g. a checkout of main and this branch) and
compare "ingest / hl7.parse": the baseline absorbs how busy the machine was.

    .venv/bin/python bench/bench_mllp.py [--messages 20000] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import hl7

from bench.common import machine
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.integration.inbound import Hl7Processor
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.server import ListenerConfig, MllpListener
from cloud.records.crypto_at_rest import AtRest
from firmware_sim.his import fixture_messages, lab_message
from protocol.hl7.message import parse
from tests.support.services import PostgresServer

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "hl7"  #: see its SOURCES.md


def messages(n: int) -> list[bytes]:
    """``n`` messages cycling through the fixtures and generated results, each with a unique MSH-10."""
    templates = [*fixture_messages(FIXTURES).values(), lab_message(0), lab_message(0, "GB18030")]
    out = []
    for i in range(n):
        t = templates[i % len(templates)]
        cid = parse(t).header.control_id.encode()
        out.append(t.replace(b"|" + cid + b"|", b"|B%09d|" % i, 1))
    return out


def _client(port: int, frames: list[bytes], connections: int, result: mp.Queue) -> None:  # type: ignore[type-arg]
    async def one(share: list[bytes]) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        bad = 0
        buf = b""
        for f in share:
            writer.write(f)
            while b"\x1c\r" not in buf:
                buf += await reader.read(65536)
            ack, _, buf = buf.partition(b"\x1c\r")
            if b"\rMSA|AA|" not in ack and b"\rMSA|CA|" not in ack:
                bad += 1
        writer.close()
        return bad

    async def run() -> tuple[float, int]:
        shares = [frames[i::connections] for i in range(connections)]
        start = time.perf_counter()
        bad = sum(await asyncio.gather(*(one(s) for s in shares)))
        return time.perf_counter() - start, bad

    result.put(asyncio.run(run()))


async def ingest(dsn: str, msgs: list[bytes], connections: int, max_batch: int, writers: int = 2,
                 process: bool = False) -> dict[str, float]:
    """Run the listener here and the load generator in a child process; returns the figures."""
    db = await Database.connect(dsn, writers + 2)
    await migrate(db)
    async with db.transaction() as tx:
        await tx.execute("TRUNCATE hl7_inbound, results, unmatched, subject_identifiers")
    keys = AtRest(os.urandom(32), os.urandom(32))
    store = Hl7Store(db, keys, max_batch=max_batch, writers=writers)
    frames = [b"\x0b" + m + b"\x1c\r" for m in msgs]
    limits = {"max_per_source": connections, "max_connections": connections + 8}  # one source, many connections
    known = {f.name for f in dataclasses.fields(ListenerConfig)}  # (older code had no limits: before/after runs)
    config = ListenerConfig(host="127.0.0.1", port=0, **{k: v for k, v in limits.items() if k in known})  # type: ignore[arg-type]
    async with MllpListener(store, config) as listener:
        queue: mp.Queue = mp.get_context("fork").Queue()  # type: ignore[type-arg]
        proc = mp.get_context("fork").Process(target=_client, args=(listener.port, frames, connections, queue))
        cpu0 = time.process_time()
        proc.start()
        seconds, bad = await asyncio.get_running_loop().run_in_executor(None, queue.get)
        cpu = time.process_time() - cpu0
        proc.join()
    async with db.transaction() as tx:
        stored = await tx.fetchval("SELECT count(*) FROM hl7_inbound WHERE status = 'accepted'")
    batches, items = store.committer.batches, store.committer.items
    out = {"msgs/s": len(msgs) / seconds, "avg batch": items / max(1, batches), "cpu us": cpu / len(msgs) * 1e6}
    if process:  # ORU -> results rows (subjects by national ID / MRN), ADT A04 -> identifiers
        processor = Hl7Processor(db, store, keys)
        start = time.perf_counter()
        while await processor.run_once(500):
            pass
        out["processed/s"] = processor.processed / (time.perf_counter() - start)
    await store.close()
    await db.close()
    if bad or stored != len(msgs):
        raise SystemExit(f"FAILED: {bad} negative ACKs, {stored} of {len(msgs)} stored")
    return out


def parse_rate(msgs: list[bytes], fn, min_seconds: float = 1.0) -> float:  # type: ignore[no-untyped-def]
    """Messages per second through ``fn``, cycling over ``msgs`` for ``min_seconds``."""
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        fn(msgs[count % len(msgs)])
        count += 1
    return count / (time.perf_counter() - start)


def python_hl7_parse(raw: bytes) -> object:
    """python-hl7's ``hl7.parse`` (decode + split into segments, fields, repetitions, components)."""
    return hl7.parse(raw.decode("utf-8", errors="replace"))


def run(messages_n: int = 20000, connections: int = 64) -> dict[str, float]:
    """Measure and return the figures (also used by ``mchub bench``)."""
    msgs = messages(messages_n)
    pg = PostgresServer(durable=True).start()
    try:
        dsn = pg.create_database("bench_mllp")
        grouped = asyncio.run(ingest(dsn, msgs, connections, max_batch=1000, process=True))
        single = asyncio.run(ingest(dsn, msgs[: max(500, messages_n // 10)], connections, max_batch=1, writers=1))
    finally:
        pg.destroy()
    sample = msgs[:25]
    ours = parse_rate(sample, parse)
    ref = parse_rate(sample, python_hl7_parse, 3.0)
    return {
        "mllp ingest msgs/s (group commit)": grouped["msgs/s"],
        "mllp ingest msgs/s per busy listener core": 1e6 / grouped["cpu us"],
        "mllp ingest listener CPU us/msg": grouped["cpu us"],
        "mllp messages per commit": grouped["avg batch"],
        "mllp ingest msgs/s (commit per message)": single["msgs/s"],
        "hl7 processing into results msgs/s": grouped["processed/s"],
        "hl7 parse msgs/s (protocol.hl7)": ours,
        "hl7 parse msgs/s (python-hl7 hl7.parse baseline)": ref,
        "ratio ingest / hl7.parse": grouped["msgs/s"] / ref,
        "ratio parse / hl7.parse": ours / ref,
        "avg message bytes": sum(len(m) for m in msgs) / len(msgs),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=20000, help="messages to ingest (default 20000)")
    ap.add_argument("--connections", type=int, default=64, help="concurrent MLLP connections (default 64)")
    args = ap.parse_args()
    res = run(args.messages, args.connections)
    print(f"machine: {machine()}")
    print(f"{args.messages} messages (three fixtures + generated screening results, "
          f"{res['avg message bytes']:.0f} bytes avg), {args.connections} connections, "
          "PostgreSQL fsync on, messages sealed with AES-256-GCM")
    for name, value in res.items():
        print(f"  {name:<45} {value:>12,.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
