"""Cloud ingest benchmark: readings/s per worker into PostgreSQL vs a raw asyncpg COPY of the
same rows (same run, same server), then ack latency p50/p99 under the fleet simulator.

    .venv/bin/python -m bench.bench_ingest                       # defaults below
    .venv/bin/python -m bench.bench_ingest --hubs 1000 --interval 10 --duration 60 --workers 2

The server runs with the default limits of ``[server]`` and ``[database]`` (what an install
gets). Figures are min/median/max over the rounds, never the best round and never a rate
extrapolated from CPU time; the ingest rate's ratio is to the raw COPY measured right after
it in the same round. A fleet latency sample is what a hub sees: from a batch's first try
to its answer, a 503's Retry-After wait included (firmware_sim/fleet.py). Everything
(PostgreSQL, the workers, the simulated hubs) runs on this machine, so the client competes
for CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import aiohttp
import asyncpg
import msgspec

from bench.common import figure, machine, show
from cloud.db.engine import epoch_to_db
from cloud.intake.keystore import init_keys, load_keys
from firmware_sim.fleet import CloudKeys, VirtualHub, drive, enroll, make_fleet, session
from protocol.ids import now_ms, reading_uid
from protocol.model import Observation, Reading
from tests.support.services import PostgresServer, free_port, wait_for_port

TOKEN = "bench-token"
COLUMNS = ["hub_id", "epoch", "received_ms", "seq", "at_ms", "uid", "device_id", "station_id", "kind", "session_id",
           "observations", "device_time", "status", "raw"]


def _config(base: Path, dsn: str, workers: int) -> Path:
    (base / "admin.token").write_text(TOKEN)
    init_keys(base / "keys")
    path = base / "cloud.toml"
    path.write_text(f'[server]\nworkers = {workers}\n[database]\nurl = "{dsn}"\n'  # default limits
                    '[admin]\ntoken_file = "admin.token"\n[logging]\nlevel = "WARNING"\n')
    return path


def _serve(config: Path, port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "mchub", "cloud", "serve", "--config", str(config), "--port",
                             str(port), "--workers", str(workers)], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    wait_for_port(port, 300, proc)  # a loaded machine starts two workers slowly
    return proc


def _readings(h: VirtualHub, n: int) -> list[Reading]:
    r, at, out = h.rng, now_ms() - n * 1000, []
    for i in range(n):
        seq = h._seq()
        out.append(Reading(hub_id=h.hub_id, epoch=h.epoch, seq=seq, at=at + i * 1000, device_id="ST1-bp",
                           station_id="ST1", kind="blood_pressure", session_id=None, raw=r.randbytes(16),
                           observations=(Observation(code="8480-6", value=r.randint(100, 150), unit="mm[Hg]"),
                                         Observation(code="8462-4", value=r.randint(60, 95), unit="mm[Hg]"),
                                         Observation(code="8867-4", value=r.randint(55, 100), unit="/min"))))
    h.pending.extend(out)
    return out


async def throughput(url: str, dsn: str, keys: CloudKeys, hubs: int, per_hub: int, batch: int,
                     worker: int, postgres: int, prefix: str = "TP") -> dict[str, float]:
    """Readings/s through HTTP ingest (one worker) and through raw COPY of the same rows.

    Also the CPU seconds the worker process and PostgreSQL used in each phase: on a busy
    machine the wall-clock rates move with the load, readings per CPU-second much less.
    """
    fleet = [VirtualHub(f"{prefix}{i:03d}", keys, random.Random(i)) for i in range(hubs)]
    rows = []
    for h in fleet:
        rows += _readings(h, per_hub)
    sealed = {h.hub_id: [h.seal_from(s, batch) for s in range(1, per_hub + 1, batch)] for h in fleet}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await enroll(http, url, TOKEN, fleet)

        async def send(hub_id: str) -> None:
            for b in sealed[hub_id]:
                async with http.post(f"{url}/api/v1/batches", data=b,
                                     headers={"Content-Type": "application/vnd.mchub.batch"}) as resp:
                    assert resp.status == 200, (resp.status, await resp.text())

        cpu0, pg0, t0 = _tree_cpu_s(worker), _tree_cpu_s(postgres), time.perf_counter()
        await asyncio.gather(*(send(h.hub_id) for h in fleet))
        ingest_s = time.perf_counter() - t0
        worker_cpu, pg_ingest_cpu = _tree_cpu_s(worker) - cpu0, _tree_cpu_s(postgres) - pg0
    enc = msgspec.json.Encoder()
    tuples = [("COPY" + r.hub_id, epoch_to_db(r.epoch), now_ms(), r.seq, r.at,
               reading_uid(r.hub_id, r.epoch, r.seq, r.at), r.device_id, r.station_id, r.kind, r.session_id,
               enc.encode(r.observations).decode(),
               r.device_time, enc.encode(r.status).decode(), r.raw) for r in rows]
    con = await asyncpg.connect(dsn)
    try:
        pg0, t0 = _tree_cpu_s(postgres), time.perf_counter()
        for i in range(0, len(tuples), batch):
            async with con.transaction():
                await con.copy_records_to_table("readings", records=tuples[i:i + batch], columns=COLUMNS)
        copy_s = time.perf_counter() - t0
        pg_copy_cpu = _tree_cpu_s(postgres) - pg0
        stored = await con.fetchval("SELECT COUNT(*) FROM readings WHERE hub_id LIKE $1", prefix + "%")
    finally:
        await con.close()
    assert stored == len(rows)
    n = len(rows)
    return {"readings": n, "ingest_per_s": n / ingest_s, "copy_per_s": n / copy_s,
            "worker_cpu_us": worker_cpu * 1e6 / n, "pg_ingest_cpu_us": pg_ingest_cpu * 1e6 / n,
            "pg_copy_cpu_us": pg_copy_cpu * 1e6 / n}


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds (user+system) used so far by a process and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _postmaster_pid(pg: PostgresServer) -> int:
    return int((pg.data / "postmaster.pid").read_text().split()[0])


def _start_postgres(durable: bool) -> tuple[Path, PostgresServer]:
    base = Path(tempfile.mkdtemp(prefix="mchub-bench-"))
    base.chmod(0o755)  # the PostgreSQL service user must reach its data directory
    return base, PostgresServer(base / "pg", durable=durable).start()


async def _fleet(args: argparse.Namespace, config: Path, keys: CloudKeys, pg: PostgresServer,
                 procs: list[subprocess.Popen[bytes]]) -> dict[str, object]:
    """``args.fleet_rounds`` rounds of ``args.hubs`` hubs syncing every ``args.interval`` s (fresh hubs each)."""
    port = free_port()
    procs.append(_serve(config, port, args.workers, config.parent / "w2.log"))
    url = f"http://127.0.0.1:{port}"
    rounds: list[dict[str, object]] = []
    for r in range(args.fleet_rounds):
        async with session() as http:  # a fresh pool a round: no connection the server closed meanwhile
            hubs = make_fleet(keys, args.hubs, f"FL{r}-", r + 1)
            await enroll(http, url, TOKEN, hubs, site_id=f"fleet{r}")
            load = os.getloadavg()[0]
            cpu0 = (_tree_cpu_s(procs[-1].pid), _tree_cpu_s(_postmaster_pid(pg)), time.process_time())
            fleet = await drive(http, [url], hubs, interval_s=args.interval, duration_s=args.duration)
            cpu1 = (_tree_cpu_s(procs[-1].pid), _tree_cpu_s(_postmaster_pid(pg)), time.process_time())
            per_batch = [(b - a) * 1000 / max(1, fleet.batches) for a, b in zip(cpu0, cpu1, strict=True)]
            print(f"fleet round {r + 1}: p50 {fleet.p50_ms:.1f} ms, p99 {fleet.p99_ms:.1f} ms, HTTP {fleet.statuses}, "
                  f"load average {load:.1f}", file=sys.stderr, flush=True)
            rounds.append({"seconds": round(fleet.seconds), "batches": fleet.batches, "records": fleet.records,
                           "statuses": fleet.statuses, "ack_p50_ms": round(fleet.p50_ms, 1),
                           "ack_p99_ms": round(fleet.p99_ms, 1), "cpu_ms_per_batch_cloud": round(per_batch[0], 2),
                           "cpu_ms_per_batch_postgres": round(per_batch[1], 2),
                           # the simulated hubs (this process: seal, sign, HTTP, verify the ack) share the CPUs
                           "cpu_ms_per_batch_simulator": round(per_batch[2], 2), "load_average": load})
    return {"hubs": args.hubs, "workers": args.workers, "interval_s": args.interval, "rounds": rounds,
            "ack_p50_ms": figure([float(r["ack_p50_ms"]) for r in rounds], "ms"),  # type: ignore[arg-type]
            "ack_p99_ms": figure([float(r["ack_p99_ms"]) for r in rounds], "ms")}  # type: ignore[arg-type]


def _summary(rounds: list[dict[str, float]]) -> dict[str, object]:
    return {"readings_per_round": int(rounds[0]["readings"]), "rounds": [
        {"ingest_per_s": round(r["ingest_per_s"]), "copy_per_s": round(r["copy_per_s"]),
         "ratio": round(r["ingest_per_s"] / r["copy_per_s"], 3),
         "worker_cpu_us_per_reading": round(r["worker_cpu_us"], 2),
         "postgres_cpu_us_per_reading": round(r["pg_ingest_cpu_us"], 2),
         "copy_postgres_cpu_us_per_reading": round(r["pg_copy_cpu_us"], 2), "load_average": r["load"]}
        for r in rounds],
        "ingest": figure([r["ingest_per_s"] for r in rounds], "readings/s", [r["copy_per_s"] for r in rounds], 0),
        "worker_cpu_us": figure([r["worker_cpu_us"] for r in rounds], "µs/reading", digits=2)}


def figures(args: argparse.Namespace, tp: dict[str, object], fleet: dict[str, object] | None) -> dict[str, object]:
    """The table rows (``mchub bench``): min/median/max, the ingest rate's ratio to raw COPY."""
    out: dict[str, object] = {"ingest 1 worker (baseline: raw asyncpg COPY)": tp["ingest"],
                              "ingest 1 worker CPU per reading": tp["worker_cpu_us"]}
    if fleet is not None:  # latency samples include Retry-After waits; the server runs its default limits
        shape = f"{fleet['hubs']} hubs/{args.interval:g} s, {fleet['workers']} workers"
        out[f"fleet ack p50, {shape}"] = fleet["ack_p50_ms"]
        out[f"fleet ack p99, {shape}"] = fleet["ack_p99_ms"]
    return out


def _print(args: argparse.Namespace, tp: dict[str, object], fleet: dict[str, object] | None) -> None:
    print(f"cloud ingest benchmark ({machine()}; PostgreSQL fsync {'off' if args.no_fsync else 'on'})")
    print(f"  1 worker, HTTP + verify + HPKE + decode + validate + store, {tp['readings_per_round']:,} readings "
          f"per round in batches of {args.batch}; raw asyncpg COPY of the same rows right after, same server:")
    for i, r in enumerate(cast(list[dict[str, Any]], tp["rounds"]), 1):
        print(f"  round {i}: ingest {r['ingest_per_s']:>7,} readings/s   raw COPY {r['copy_per_s']:>7,}/s   "
              f"ratio {r['ratio']:.3f}   CPU per reading: worker {r['worker_cpu_us_per_reading']} us, PostgreSQL "
              f"{r['postgres_cpu_us_per_reading']} us (raw COPY {r['copy_postgres_cpu_us_per_reading']} us); "
              f"load average {r['load_average']:.1f}")
    for i, f in enumerate(cast(list[dict[str, Any]], fleet["rounds"]) if fleet else [], 1):
        print(f"  fleet round {i}: {args.hubs} hubs every {args.interval:g} s on {args.workers} "
              f"workers for {f['seconds']} s: {f['batches']} batches, HTTP {f['statuses']}, ack p50 "
              f"{f['ack_p50_ms']} ms, p99 {f['ack_p99_ms']} ms; server CPU per batch: workers "
              f"{f['cpu_ms_per_batch_cloud']} ms, PostgreSQL {f['cpu_ms_per_batch_postgres']} ms, simulated hubs "
              f"{f['cpu_ms_per_batch_simulator']} ms; "
              f"load average {f['load_average']:.1f}")
    show(figures(args, tp, fleet))


async def measure(args: argparse.Namespace) -> tuple[dict[str, object], dict[str, object] | None]:
    """The throughput rounds (summary) and the fleet phase (None with ``--hubs 0``)."""
    base, pg = _start_postgres(not args.no_fsync)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        dsn = pg.create_database("bench")
        config = _config(base, dsn, 1)
        ck = load_keys(base / "keys")
        keys = CloudKeys(next(iter(ck.published.values())), ck.signing.public_key())
        port = free_port()
        procs.append(_serve(config, port, 1, base / "w1.log"))
        rounds = []
        for i in range(args.repeat):
            load = os.getloadavg()[0]
            rounds.append(await throughput(f"http://127.0.0.1:{port}", dsn, keys, args.tp_hubs, args.tp_readings,
                                           args.batch, procs[-1].pid, _postmaster_pid(pg), f"R{i}"))
            rounds[-1]["load"] = load
            print(f"round {i + 1}: ingest {rounds[-1]['ingest_per_s']:,.0f} readings/s, raw COPY "
                  f"{rounds[-1]['copy_per_s']:,.0f}/s, load average {load:.1f}", file=sys.stderr, flush=True)
        procs.pop().terminate()
        tp = _summary(rounds)
        fleet = await _fleet(args, config, keys, pg, procs) if args.hubs else None
        return tp, fleet
    finally:
        for p in procs:
            p.terminate()
            p.wait(20)
        pg.destroy()


async def main(args: argparse.Namespace) -> None:
    tp, fleet = await measure(args)
    if args.json:
        print(json.dumps({"machine": machine(), "fsync": not args.no_fsync, "batch": args.batch,
                          "throughput": tp, "fleet": fleet}, ensure_ascii=False))
    else:
        _print(args, tp, fleet)


def run() -> dict[str, object]:
    """For ``mchub bench``: 3 throughput rounds, then 3 rounds of 1,000 hubs every 10 s for 30 s on 2 workers."""
    args = _parser().parse_args([])
    tp, fleet = asyncio.run(measure(args))
    return figures(args, tp, fleet)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tp-hubs", type=int, default=8, help="hubs in the throughput phase (default 8)")
    ap.add_argument("--tp-readings", type=int, default=20000, help="readings per hub in the throughput phase")
    ap.add_argument("--batch", type=int, default=2000, help="readings per batch (default 2000)")
    ap.add_argument("--repeat", type=int, default=3, help="throughput rounds; min/median/max are printed (default 3)")
    ap.add_argument("--hubs", type=int, default=1000, help="fleet size for the latency phase (default 1000; 0: skip)")
    ap.add_argument("--interval", type=float, default=10.0, help="seconds between syncs of a hub (default 10)")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds of fleet traffic a round (default 30)")
    ap.add_argument("--fleet-rounds", type=int, default=3, help="fleet rounds, fresh hubs each (default 3)")
    ap.add_argument("--workers", type=int, default=2, help="cloud workers in the latency phase (default 2)")
    ap.add_argument("--no-fsync", action="store_true", help="run PostgreSQL with fsync off")
    ap.add_argument("--json", action="store_true")
    return ap


if __name__ == "__main__":
    asyncio.run(main(_parser().parse_args()))
