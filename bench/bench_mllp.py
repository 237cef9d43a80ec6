"""MLLP as hospitals connect: the deployed cloud server, durable before ACK, processing behind it.

``mchub cloud serve`` runs as deployed (one worker, so the MLLP listener and the HL7
processor share that process as in production; default limits) on PostgreSQL with fsync
and synchronous_commit ON; messages are sealed with the cloud's at-rest key. A load
generator in a separate process sends real messages — the fixture files of
``tests/fixtures/hl7`` (see its SOURCES.md) and generated screening results, each with a
unique MSH-10 — in three shapes:

* ``1 conn lock-step``: one connection, the next message after the previous ACK (how a HIS
  usually sends): every message waits for its own commit, so the commit latency is the bound;
* ``1 conn pipelined``: one connection, every frame written without waiting, ACKs read as
  they come (several frames per read: one transaction for them, then the ACKs in order);
* ``4 conn lock-step``: a LIS on 4 connections, each lock-step (concurrent connections
  share commits: group commit across connections, before any of their ACKs).

Per shape: ingest (first frame sent to last ACK; every ACK checked AA/CA), processing
(the processor, concurrent with the listener in the same server process: messages over
the span from the first to the last ``processed_ms`` of the round), into results (first
frame sent until the last result row is committed) and the **results lag** (from the last
ACK until the last result row is committed, from the database's ``processed_ms``); the
messages not processed yet at the last ACK over that lag are the processor's rate with the
listener idle.
Baselines in the same round: ingest — the same frames' bytes stored by a plain asyncpg
``INSERT`` per message, one commit each, over as many database connections as the shape
has MLLP connections; processing — python-hl7's ``hl7.parse`` of the same messages (CPU
only), and the result rows the round produced written again by a plain asyncpg
``executemany`` INSERT (one transaction per 200 messages' rows, like the processor's groups)
into a copy of ``results``. Also per round: the commit latency of this PostgreSQL (one
row, one commit, on one connection, 200 times: what bounds lock-step) and the load
average. min/median/max of the rounds (default 3).

    .venv/bin/python -m bench.bench_mllp [--messages 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import hl7

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_ingest import _postmaster_pid, _tree_cpu_s
from bench.common import figure, machine, rate, show
from cloud.intake.keystore import init_keys
from firmware_sim.his import fixture_messages, lab_message
from protocol.hl7.message import parse
from tests.support.services import PostgresServer, free_port, wait_for_port

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "hl7"  #: see its SOURCES.md
SOURCES = ("127.0.0.1", "127.0.0.2")  #: the LIS's connections come from two addresses


@dataclass(frozen=True)
class Shape:
    """How the sender uses its connections."""

    name: str
    connections: int
    pipelined: bool


SHAPES = (Shape("1 conn lock-step", 1, False), Shape("1 conn pipelined", 1, True),
          Shape("4 conn lock-step", 4, False))


def messages(n: int, tag: str) -> list[bytes]:
    """``n`` messages cycling through the fixtures and generated results, each with a unique MSH-10."""
    templates = [*fixture_messages(FIXTURES).values(), lab_message(0), lab_message(0, "GB18030")]
    out = []
    for i in range(n):
        t = templates[i % len(templates)]
        cid = parse(t).header.control_id.encode()
        out.append(t.replace(b"|" + cid + b"|", b"|%s%08d|" % (tag.encode(), i), 1))
    return out


def _config(base: Path, dsn: str, mllp_port: int) -> Path:
    """cloud.toml as an installation writes it, with [mllp] on and the LIS addresses allowed; limits default."""
    (base / "admin.token").write_text("bench-token")
    init_keys(base / "keys")
    path = base / "cloud.toml"
    path.write_text(f'[server]\nport = {free_port()}\n[database]\nurl = "{dsn}"\n[keys]\ndir = "keys"\n'
                    '[admin]\ntoken_file = "admin.token"\n[logging]\nlevel = "WARNING"\n'
                    f'[mllp]\nenabled = true\nhost = "127.0.0.1"\nport = {mllp_port}\n'
                    'allowed_senders = ["127.0.0.0/30"]\n'
                    '[mllp.code_map.L]\nHPV16 = "59263-4"\nTCT = "10524-7"\n')
    return path


def _client(port: int, frames: list[bytes], shape: Shape, result: mp.Queue) -> None:  # type: ignore[type-arg]
    """The load generator (a child process): returns (seconds to the last ACK, wall clock then, negative ACKs)."""

    def ok(ack: bytes) -> bool:
        return b"\rMSA|AA|" in ack or b"\rMSA|CA|" in ack

    async def lock_step(share: list[bytes], source: str) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        bad, buf = 0, b""
        for f in share:
            writer.write(f)
            while b"\x1c\r" not in buf:
                buf += await reader.read(65536)
            ack, _, buf = buf.partition(b"\x1c\r")
            bad += not ok(ack)
        writer.close()
        return bad

    async def pipelined(share: list[bytes], source: str) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))

        async def send() -> None:
            for f in share:
                writer.write(f)
                await writer.drain()

        sending = asyncio.create_task(send())
        bad, buf, seen = 0, b"", 0
        while seen < len(share):
            chunk = await reader.read(65536)
            if not chunk:
                raise SystemExit("connection closed before every ACK arrived")
            buf += chunk
            *acks, buf = buf.split(b"\x1c\r")
            seen += len(acks)
            bad += sum(not ok(a) for a in acks)
        await sending
        writer.close()
        return bad

    async def run() -> tuple[float, float, int]:
        n = shape.connections
        shares = [frames[i::n] for i in range(n)]
        one = pipelined if shape.pipelined else lock_step
        start = time.perf_counter()
        bad = sum(await asyncio.gather(*(one(s, SOURCES[i * len(SOURCES) // n]) for i, s in enumerate(shares))))
        return time.perf_counter() - start, time.time(), bad

    result.put(asyncio.run(run()))


async def _wal_flushes(con: asyncpg.Connection) -> int:
    """WAL fsyncs so far (every durable commit needs one; group commit shares them)."""
    return int(await con.fetchval("SELECT wal_sync FROM pg_stat_wal"))


async def _pending(con: asyncpg.Connection) -> int:
    return int(await con.fetchval("SELECT count(*) FROM hl7_inbound WHERE status = 'accepted' "
                                  "AND processed_ms IS NULL"))


async def product_round(con: asyncpg.Connection, port: int, server_pid: int, msgs: list[bytes],
                        shape: Shape) -> dict[str, float]:
    """One round of one shape against the running server; returns its figures."""
    first_id = await con.fetchval("SELECT coalesce(max(id), 0) FROM hl7_inbound")
    frames = [b"\x0b" + m + b"\x1c\r" for m in msgs]
    queue: mp.Queue = mp.get_context("fork").Queue()  # type: ignore[type-arg]
    proc = mp.get_context("fork").Process(target=_client, args=(port, frames, shape, queue))
    cpu0, syncs0 = _tree_cpu_s(server_pid), await _wal_flushes(con)
    proc.start()
    seconds, last_ack, bad = await asyncio.get_running_loop().run_in_executor(None, queue.get)
    proc.join()
    while True:  # the processor (in the server, concurrent with the listener) catches up: polled, 20 ms
        if not await _pending(con):
            break
        await asyncio.sleep(0.02)
    cpu, syncs = _tree_cpu_s(server_pid) - cpu0, await _wal_flushes(con) - syncs0
    r = await con.fetchrow("SELECT count(*) AS stored, count(process_error) AS failed, min(processed_ms) AS first, "
                           "max(processed_ms) AS last, count(*) FILTER (WHERE processed_ms > $2) AS behind "
                           "FROM hl7_inbound WHERE id > $1 AND status = 'accepted'", first_id, int(last_ack * 1000))
    if bad or r["stored"] != len(msgs) or r["failed"]:
        raise SystemExit(f"FAILED: {bad} negative ACKs, {r['stored']} of {len(msgs)} stored, {r['failed']} not "
                         "processed")
    lag = max(r["last"] / 1000 - last_ack, 0.0)
    return {"ingest": len(msgs) / seconds, "processing": len(msgs) / max((r["last"] - r["first"]) / 1000, 1e-3),
            "results": len(msgs) / (seconds + lag), "lag": lag, "behind": r["behind"],
            "drain": r["behind"] / lag if r["behind"] > 50 else float("nan"), "cpu": cpu / len(msgs) * 1e6,
            "fsyncs": syncs / len(msgs), "first id": first_id}


async def baseline_round(dsn: str, msgs: list[bytes], connections: int, tag: str) -> tuple[float, float]:
    """The same bytes durably stored the plain way, one INSERT and one commit per message: (msgs/s, fsyncs/msg)."""
    cons = [await asyncpg.connect(dsn) for _ in range(connections)]

    async def one(con: asyncpg.Connection, share: list[tuple[str, bytes]]) -> None:
        for uid, raw in share:
            await con.execute("INSERT INTO bench_plain (uid, raw) VALUES ($1, $2)", uid, raw)

    rows = [(f"{tag}{i}", m) for i, m in enumerate(msgs)]
    syncs0, start = await _wal_flushes(cons[0]), time.perf_counter()
    await asyncio.gather(*(one(c, rows[i::connections]) for i, c in enumerate(cons)))
    seconds = time.perf_counter() - start
    for c in cons:  # a backend reports its WAL statistics when it exits (when idle: up to 10 s later)
        await c.close()
    await asyncio.sleep(0.2)
    con = await asyncpg.connect(dsn)
    syncs = await _wal_flushes(con) - syncs0
    await con.close()
    return len(msgs) / seconds, syncs / len(msgs)


async def results_baseline(con: asyncpg.Connection, first_id: int, n: int) -> float:
    """The result rows a round produced, written again the plain way: msgs/s of ``executemany`` INSERT,
    one transaction per 200 messages' rows, into a copy of ``results`` (same indexes, no foreign key)."""
    rows = await con.fetch(
        "SELECT r.origin, r.subject_id, r.source, 'plain:' || r.source_key AS key, r.kind, r.code, r.value, r.unit, "
        "r.observed_ms, r.payload, r.created_ms FROM results r JOIN hl7_inbound h ON r.origin = 'hl7:' || h.uid "
        "WHERE h.id > $1 ORDER BY r.id", first_id)
    groups: dict[str, list[tuple[object, ...]]] = {}
    for r in rows:
        groups.setdefault(r["origin"], []).append((r["subject_id"], r["source"], r["key"], r["kind"], r["code"],
                                                  r["value"], r["unit"], r["observed_ms"], r["payload"],
                                                  r["created_ms"], r["origin"]))
    per_message = list(groups.values())
    start = time.perf_counter()
    for i in range(0, len(per_message), 200):
        async with con.transaction():
            await con.executemany("INSERT INTO bench_results (subject_id, source, source_key, kind, code, value, "
                                  "unit, observed_ms, payload, created_ms, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                                  "$8, $9, $10, $11)", [row for m in per_message[i:i + 200] for row in m])
    return n / (time.perf_counter() - start)


async def commit_latency(con: asyncpg.Connection, n: int = 200) -> list[float]:
    """Milliseconds of ``n`` durable one-row commits on one connection (what a lock-step sender waits for)."""
    out = []
    for i in range(n):
        start = time.perf_counter()
        await con.execute("INSERT INTO bench_commit (n) VALUES ($1)", i)
        out.append((time.perf_counter() - start) * 1000)
    return out


async def measure(dsn: str, port: int, server_pid: int, pg_pid: int, n: int, rounds: int
                  ) -> dict[str, dict[str, list[float]]]:
    """Every shape ``rounds`` times, each beside its baseline; raw per-round figures."""
    con = await asyncpg.connect(dsn)
    await con.execute("CREATE TABLE bench_plain (id BIGSERIAL PRIMARY KEY, uid TEXT NOT NULL UNIQUE, "
                      "raw BYTEA NOT NULL)")
    await con.execute("CREATE TABLE bench_results (LIKE results INCLUDING DEFAULTS INCLUDING INDEXES)")
    await con.execute("CREATE TABLE bench_commit (id BIGSERIAL PRIMARY KEY, n INT NOT NULL)")
    out: dict[str, dict[str, list[float]]] = {s.name: {} for s in SHAPES}  # and "parse"
    await product_round(con, port, server_pid, messages(50, "W"), SHAPES[0])  # warm-up: connections, caches
    for r in range(rounds):
        for k, shape in enumerate(SHAPES):
            tag = f"R{r}{k}"
            msgs = messages(n, tag)
            pg0 = _tree_cpu_s(pg_pid)
            figures = await product_round(con, port, server_pid, msgs, shape)
            figures["pg cpu"] = (_tree_cpu_s(pg_pid) - pg0) / n * 1e6
            figures["load"] = os.getloadavg()[0]
            figures["baseline"], figures["baseline fsyncs"] = await baseline_round(dsn, msgs, shape.connections, tag)
            figures["baseline insert results"] = await results_baseline(con, int(figures.pop("first id")), n)
            figures["baseline parse"] = parse_rate(python_hl7_parse, msgs[:25])
            for name, value in figures.items():
                out[shape.name].setdefault(name, []).append(value)
        parsing = out.setdefault("parse", {})
        parsing.setdefault("ours", []).append(parse_rate(parse))
        parsing.setdefault("hl7.parse", []).append(parse_rate(python_hl7_parse))
        latencies = await commit_latency(con)
        for name, value in (("min", min(latencies)), ("median", statistics.median(latencies)),
                            ("max", max(latencies))):
            out.setdefault("commit", {}).setdefault(name, []).append(value)
    await con.close()
    return out


def parse_rate(fn: Callable[[bytes], object], sample: list[bytes] | None = None) -> float:
    """Messages per second through ``fn`` (CPU only), on the benchmark's message mix."""
    sample = sample or messages(25, "S")
    return rate(len(sample), lambda: [fn(m) for m in sample], 0.5)


def python_hl7_parse(raw: bytes) -> object:
    """python-hl7's ``hl7.parse`` (decode + split into segments, fields, repetitions, components)."""
    return hl7.parse(raw.decode("utf-8", errors="replace"))


def run(messages_n: int = 2000, rounds: int = 3) -> dict[str, object]:
    """Measure and return the figures (also used by ``mchub bench``)."""
    pg = PostgresServer(durable=True).start()
    server: subprocess.Popen[bytes] | None = None
    try:
        dsn = pg.create_database("bench_mllp")
        with tempfile.TemporaryDirectory(prefix="bench-mllp-") as tmp:
            port = free_port()
            config = _config(Path(tmp), dsn, port)
            with open(Path(tmp) / "serve.log", "wb") as log:
                server = subprocess.Popen([sys.executable, "-m", "mchub", "cloud", "serve", "--config", str(config)],
                                          stdout=log, stderr=subprocess.STDOUT)
            wait_for_port(port, 60, server)
            raw = asyncio.run(measure(dsn, port, server.pid, _postmaster_pid(pg), messages_n, rounds))
            server.terminate()
            server.wait(30)
    finally:
        if server is not None and server.poll() is None:
            server.kill()
        pg.destroy()
    out: dict[str, object] = {}
    for shape in SHAPES:
        f = raw[shape.name]
        out[f"mllp {shape.name}: durable ingest"] = figure(f["ingest"], "msgs/s", f["baseline"])
        out[f"mllp {shape.name}: processing"] = figure(f["processing"], "msgs/s", f["baseline insert results"])
        out[f"mllp {shape.name}: processing / ingest"] = figure(
            [p / i for p, i in zip(f["processing"], f["ingest"], strict=True)], "x", digits=2)
        out[f"mllp {shape.name}: baseline python-hl7 parse"] = figure(f["baseline parse"], "msgs/s")
        out[f"mllp {shape.name}: into results"] = figure(f["results"], "msgs/s", f["baseline"])
        out[f"mllp {shape.name}: results lag after last ACK"] = figure(f["lag"], "s", digits=2)
        out[f"mllp {shape.name}: messages not processed at the last ACK"] = figure(f["behind"], "msgs", digits=0)
        if not any(math.isnan(d) for d in f["drain"]):  # only when a backlog was left (> 50 messages)
            out[f"mllp {shape.name}: processing, listener idle (that backlog)"] = figure(f["drain"], "msgs/s")
        out[f"mllp {shape.name}: load average (1 min)"] = figure(f["load"], "load", digits=1)
        out[f"mllp {shape.name}: WAL fsyncs (ingest + processing)"] = figure(f["fsyncs"], "per msg",
                                                                              f["baseline fsyncs"], digits=3)
        out[f"mllp {shape.name}: server CPU"] = figure(f["cpu"], "µs/msg")
        out[f"mllp {shape.name}: PostgreSQL CPU"] = figure(f["pg cpu"], "µs/msg")
    out["hl7 parse (protocol.hl7.message.parse)"] = figure(raw["parse"]["ours"], "msgs/s",
                                                               raw["parse"]["hl7.parse"])
    for name, values in raw["commit"].items():
        out[f"commit latency, one connection ({name} of 200)"] = figure(values, "ms", digits=2)
    lock_step = statistics.median(raw["commit"]["median"])
    out["lock-step bound (1 / median commit latency) msgs/s"] = round(1000 / lock_step)
    sample = messages(20, "S")
    out["avg message bytes"] = round(statistics.mean(len(m) for m in sample))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=2000, help="messages per shape and round (default 2000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    args = ap.parse_args()
    res = run(args.messages, args.rounds)
    print(f"machine: {machine()}")
    print(f"{args.messages} messages per shape and round ({res['avg message bytes']} bytes avg), "
          f"{args.rounds} rounds; PostgreSQL fsync and synchronous_commit on; baseline: asyncpg INSERT + "
          "commit per message, same bytes, same connection count")
    show(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
