"""Backlog drain: a week's backlog from a hub into ``mchub cloud serve`` on PostgreSQL (fsync on).

The backlog is what a clinic's devices really send: frames the firmware simulators encode
from the specification (A5 height/weight modules, Detecto lines with the device's clock,
Accutorr blood-pressure lines) for a stream of simulated patients, decoded by the shipped
station drivers, and stored by the hub's ledger one reading per commit, each with its own
receive time (``n`` readings spread over seven days). The hub daemon then drains it over
real HTTP on loopback into the cloud server (one worker, the default limits), and the
figure is readings/s from the hub's start to the last durable ack.

Baseline, in the same run, same backlog and same cloud: the hub with ``batches_in_flight
= 1`` (one batch on the wire at a time, the next sealed meanwhile: the sync path before
issue 21). Rounds alternate which goes first; each uses a fresh copy of the backlog and a
fresh cloud database. Reported: min/median/max of the rounds, the baseline's median and
the median ratio; bytes on the wire per reading (sealed batches; HTTP headers add ~0.03).

    .venv/bin/python bench/bench_drain.py [N ...] [--loopback-only]   # default 100000; docs also give 1000000
    MCHUB_BENCH_DRAIN_SIZES=100000,1000000 mchub bench drain --json    # the same inside ``mchub bench``

A second variant drains the first size through ``mchub sim netfault`` (its own process)
adding ``LINK_LATENCY_S`` to every 16 kB chunk each way: on loopback a busy machine's CPU
bounds both paths alike, over a link with latency the round trips one batch at a time waits
for are what pipelining hides.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.common import figure, show
from bench.hub_common import ROOT, disk_dir, machine
from drivers.base import Measurement
from drivers.stations import decode_a5, decode_accutorr, decode_detecto
from edge import config, identity
from edge.daemon import Hub
from edge.sessions import SessionManager
from edge.store.ledger import Ledger, ReadingIn
from edge.store.schema import open_db
from firmware_sim.patients import Patient, patients
from firmware_sim.station_sim import Values, a5_encode, accutorr_encode, detecto_encode

Figures = dict[str, dict[str, float | str | None]]
ROUNDS = 3
#: the second variant's link (``mchub sim netfault --latency``): 20 ms added to every 16 kB chunk each
#: way, like a TCP path with a 16 kB window and a 20 ms delay (~0.8 MB/s a connection; a batch of
#: 5,000 readings is ~125 kB)
LINK_LATENCY_S = 0.02
WINDOW = config.SyncConfig().batches_in_flight
WEEK_MS = 7 * 86_400_000
START_MS = 1_790_000_000_000


def _frame(i: int, p: Patient, at_ms: int) -> tuple[str, Measurement]:
    """(device id, decoded measurement) of the ``i``-th frame: stations and BP monitors in turn."""
    if i % 2:
        v = Values(systolic=p.systolic, diastolic=p.diastolic, mean=p.mean_pressure, pulse=p.pulse)
        return "bp-1", decode_accutorr(accutorr_encode(v, elapsed=i % 60).rstrip(b">"))[0]  # type: ignore[return-value]
    v = Values(height_cm=p.height_cm, weight_kg=p.weight_kg)
    if i % 4 == 0:
        return "station-a5", decode_a5(a5_encode(v))[0]  # type: ignore[return-value]
    clock = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC).strftime("%H:%M,%m/%d/%y")
    line = clock.encode() + detecto_encode(v)[len("09:41,03/05/25"):]  # the device's own clock, to the minute
    return "station-detecto", decode_detecto(line)[0]  # type: ignore[return-value]


class _Clock:
    """Hub receive times spread over a week, a few seconds to a minute apart."""

    def __init__(self, n: int) -> None:
        self.t, self.step, self.rng = START_MS, max(1, WEEK_MS // n), random.Random(5)

    def __call__(self) -> int:
        self.t += self.rng.randint(self.step // 2, self.step * 3 // 2)
        return self.t


def fill(db: Path, hub_id: str, n: int) -> int:
    """A hub database holding ``n`` readings' backlog (fewer when a frame repeats one); the readings stored."""
    conn, _ = open_db(db, hub_id)
    conn.execute("PRAGMA synchronous = OFF")  # setting up, not measured
    clock = _Clock(n)
    ledger = Ledger(conn, SessionManager({}), lambda b: b, clock=clock)
    stream = patients(seed=3)
    people = [next(stream) for _ in range(min(n // 2 + 1, 20_000))]  # a town's patients, each back now and then
    for i in range(n):
        device, m = _frame(i, people[i // 2 % len(people)], clock.t)
        ledger.commit([ReadingIn("room-1", device, m)])
    stored = int(conn.execute("SELECT next_seq - 1 FROM sync_state").fetchone()[0])
    conn.close()
    return stored


async def _drain(cfg: config.HubConfig, n: int) -> tuple[float, float]:
    hub = Hub(cfg)
    start = time.perf_counter()
    await hub.start(web=False)
    while hub.reader.state()["acked_through"] < n:  # noqa: ASYNC110 - polling the database is the point
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    assert hub.sync is not None
    per_reading = hub.sync.sent_bytes / max(hub.sync.sent_records, 1)
    await hub.stop()
    return n / elapsed, per_reading


def _mchub(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "mchub", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


class _Cloud:
    """``mchub cloud serve`` with one set of keys; each round gets a fresh database."""

    def __init__(self, d: Path) -> None:
        from tests.support.services import PostgresServer

        d.chmod(0o755)  # PostgreSQL runs as its own user when we are root
        self.d, self.dir = d, d / "cloud"
        self.dir.mkdir()
        self.pg = PostgresServer(d / "pg", durable=True).start()
        self.rounds = 0
        self._write_config(self.pg.create_database("mchub0"))
        _mchub("cloud", "init", "--config", "cloud.toml", cwd=self.dir)

    def _write_config(self, dsn: str) -> None:
        from tests.support.services import free_port

        self.port = free_port()
        (self.dir / "cloud.toml").write_text(
            f'[server]\nport = {self.port}\n[database]\nurl = "{dsn}"\n[keys]\ndir = "keys"\n'
            '[admin]\ntoken_file = ""\n[logging]\njson = false\nlevel = "WARNING"\n', encoding="utf-8")

    def serve(self, hub_id: str | None = None, public_hex: str = "") -> subprocess.Popen[bytes]:
        """A fresh database with the hub enrolled, and the server on it."""
        from tests.support.services import wait_for_port

        self.rounds += 1
        self._write_config(self.pg.create_database(f"mchub{self.rounds}"))
        _mchub("cloud", "migrate", "--config", "cloud.toml", cwd=self.dir)
        if hub_id is not None:
            _mchub("cloud", "hub", "add", "--id", hub_id, "--site", "S1", "--config", "cloud.toml",
                   "--public-key", public_hex, cwd=self.dir)
        with open(self.d / "cloud.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "mchub", "cloud", "serve", "--config", "cloud.toml"],
                                    cwd=self.dir, stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)})
        wait_for_port(self.port, 60, proc)
        return proc

    def finish(self, proc: subprocess.Popen[bytes]) -> None:
        proc.terminate()
        proc.wait(30)
        self.pg._run(self.pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.pg.port), "-U", "postgres", "-d",
                     "postgres", "-q", "-c", f'DROP DATABASE "mchub{self.rounds}"')

    @staticmethod
    def pg_bin(name: str) -> str:
        from tests.support.services import find_pg_bin

        return str(find_pg_bin(name))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _link(target_port: int, latency_s: float) -> tuple[subprocess.Popen[str], int]:
    """``mchub sim netfault`` in its own process: ``latency_s`` added to every 16 kB chunk each way."""
    proc = subprocess.Popen([sys.executable, "-m", "mchub", "sim", "netfault", "--target", f"127.0.0.1:{target_port}",
                             "--latency", str(latency_s)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "netfault: 127.0.0.1:PORT -> ..."
    return proc, int(line.split()[1].rsplit(":", 1)[1])


def drain(n: int, rounds: int = ROUNDS, latency_s: float = 0.0) -> Figures:
    """Fill one backlog of ``n`` readings and drain copies of it, pipelined and one at a time
    (``latency_s``: through a link that adds it to every 16 kB chunk each way)."""
    d = disk_dir("mchub-bench-drain-")
    cloud = _Cloud(d)
    try:
        proc = cloud.serve()  # only to publish the keys a hub seals to
        with urllib.request.urlopen(cloud.url + "/api/v1/keys", timeout=10) as response:
            (d / "cloud-keys.json").write_bytes(response.read())
        cloud.finish(proc)
        ident = identity.init(d / "identity", "bench-hub", d / "cloud-keys.json")
        t = time.perf_counter()
        stored = fill(d / "backlog.db", ident.hub_id, n)
        fill_s = time.perf_counter() - t
        print(f"filled {stored:,} readings in {fill_s:.0f} s", file=sys.stderr, flush=True)
        rates: dict[int, list[float]] = {WINDOW: [], 1: []}
        wire: list[float] = []
        for r in range(rounds):
            for window in ((WINDOW, 1) if r % 2 == 0 else (1, WINDOW)):
                run_dir = d / f"run-{r}-{window}"
                (run_dir / "data").mkdir(parents=True)
                with sqlite3.connect(d / "backlog.db") as src, sqlite3.connect(run_dir / "data" / "hub.db") as dst:
                    src.backup(dst)
                proc = cloud.serve(ident.hub_id, ident.public_hex)
                link, port = _link(cloud.port, latency_s) if latency_s else (None, cloud.port)
                try:
                    (run_dir / "hub.toml").write_text(
                        f'[hub]\nidentity_dir = "{d / "identity"}"\n[sync]\nurl = "http://127.0.0.1:{port}"\n'
                        f'batches_in_flight = {window}\nretention_days = 30\n[storage]\nmin_free_mb = 0\n',
                        encoding="utf-8")
                    cfg = config.load(run_dir / "hub.toml")
                    rate, per_reading = asyncio.run(_drain(cfg, stored))
                finally:
                    if link is not None:
                        link.terminate()
                        link.wait(30)
                    cloud.finish(proc)
                rates[window].append(rate)
                wire.append(per_reading)
                print(f"round {r + 1}, {window} in flight: {rate:,.0f} readings/s, {per_reading:.1f} B/reading, "
                      f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)
                shutil.rmtree(run_dir)
    finally:
        cloud.pg.destroy()
        shutil.rmtree(d, ignore_errors=True)
    label = f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M"
    if latency_s:
        label += f" {latency_s * 1000:g}ms link"  # 16 kB chunks delayed that much each way
    return {  # names fit the 52 columns of ``mchub bench``
        f"drain {label}, {WINDOW} in flight (baseline: 1)": figure(rates[WINDOW], "readings/s", rates[1], digits=0),
        f"drain {label}, 1 in flight": figure(rates[1], "readings/s", digits=0),
        f"drain {label}, on the wire": figure(wire, "B/reading"),
        f"drain {label}, backlog fill (setup)": figure([stored / fill_s], "readings/s", digits=0),
    }


def run(sizes: tuple[int, ...] = (), latency_s: float = LINK_LATENCY_S) -> Figures:
    """Measure and return the figures (also used by ``mchub bench``): on loopback, then
    (``latency_s`` > 0) the first size again over a link with latency. Sizes default to
    ``MCHUB_BENCH_DRAIN_SIZES`` (comma-separated, e.g. ``100000,1000000``), else 100,000."""
    sizes = sizes or tuple(int(x) for x in os.environ.get("MCHUB_BENCH_DRAIN_SIZES", "100000").split(","))
    out: Figures = {}
    for n in sizes:
        out.update(drain(n))
    if latency_s:
        out.update(drain(sizes[0], latency_s=latency_s))
    return out


if __name__ == "__main__":
    print(machine(), "load average", " ".join(f"{x:.1f}" for x in os.getloadavg()))
    sizes = tuple(int(a) for a in sys.argv[1:] if not a.startswith("--"))
    show(run(sizes, 0.0 if "--loopback-only" in sys.argv else LINK_LATENCY_S))  # type: ignore[arg-type]
