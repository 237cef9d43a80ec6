"""Backlog drain: how fast a hub empties a large backlog into the cloud, and bytes per reading.

A hub database is filled with ``n`` realistic readings while "offline", then the sync
client drains it to the reference receiver (tests/support/refcloud.py, SQLite, run in its
own process) over real HTTP on loopback. Reported: readings/s from start of draining to
the last durable ack, and sealed bytes on the wire per reading (HTTP headers add ~150
bytes per batch of 5,000, i.e. 0.03 bytes per reading).

    .venv/bin/python bench/bench_drain.py [N]
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.hub_common import ROOT, disk_dir, machine, measurements, refcloud_process
from edge import config, identity
from edge.daemon import Hub
from edge.sessions import SessionManager
from edge.store.ledger import Ledger, ReadingIn
from edge.store.schema import open_db


def _fill(cfg: config.HubConfig, ident: identity.Identity, n: int) -> None:
    conn, _ = open_db(cfg.db_path, ident.hub_id)
    ledger = Ledger(conn, SessionManager({}), ident.encrypt, clock=_Clock())
    ms = measurements(n, seed=3)
    for i in range(0, n, 5000):
        ledger.commit([ReadingIn("station-1", f"dev-{j % 3}", m) for j, m in enumerate(ms[i:i + 5000], start=i)])
    conn.close()


class _Clock:
    """Hub receive times ~20 s apart on average, as in a busy clinic."""

    def __init__(self) -> None:
        self.t = 1_790_000_000_000

    def __call__(self) -> int:
        self.t += 20_000
        return self.t


async def _drain(cfg: config.HubConfig, n: int) -> tuple[float, float]:
    hub = Hub(cfg)
    start = time.perf_counter()
    await hub.start(web=False)
    while hub.reader.state()["acked_through"] < n:  # noqa: ASYNC110 - polling the database is the point
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - start
    assert hub.sync is not None
    sent = hub.sync.sent_bytes / max(hub.sync.sent_records, 1)
    await hub.stop()
    return n / elapsed, sent


def _mchub(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "mchub", *args], cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


def drain_to_real_cloud(n: int) -> float:
    """Drain ``n`` readings into ``mchub cloud serve`` on a durable (fsync on) PostgreSQL."""
    from tests.support.services import PostgresServer, free_port, wait_for_port

    d = disk_dir("mchub-bench-drain-pg-")
    d.chmod(0o755)  # PostgreSQL runs as its own user when we are root
    pg = PostgresServer(d / "pg", durable=True).start()
    cloud_dir, port = d / "cloud", free_port()
    cloud_dir.mkdir()
    (cloud_dir / "cloud.toml").write_text(
        f'[server]\nport = {port}\n[database]\nurl = "{pg.create_database("mchub")}"\n[keys]\ndir = "keys"\n'
        '[admin]\ntoken_file = ""\n[logging]\njson = false\nlevel = "WARNING"\n', encoding="utf-8")
    _mchub("cloud", "init", "--config", "cloud.toml", cwd=cloud_dir)
    _mchub("cloud", "migrate", "--config", "cloud.toml", cwd=cloud_dir)
    log = open(d / "cloud.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen([sys.executable, "-m", "mchub", "cloud", "serve", "--config", "cloud.toml"],
                            cwd=cloud_dir, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        wait_for_port(port, 60, proc)
        url = f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(url + "/api/v1/keys", timeout=10) as response:
            (d / "cloud-keys.json").write_bytes(response.read())
        ident = identity.init(d / "identity", "bench-hub", d / "cloud-keys.json")
        _mchub("cloud", "hub", "add", "--id", "bench-hub", "--site", "S1", "--config", "cloud.toml",
               "--public-key", ident.public_hex, cwd=cloud_dir)
        (d / "hub.toml").write_text(f'[hub]\nidentity_dir = "identity"\n[sync]\nurl = "{url}"\n'
                                    'retention_days = 30\nbatch_max_records = 5000\n[storage]\nmin_free_mb = 0\n',
                                    encoding="utf-8")
        cfg = config.load(d / "hub.toml")
        _fill(cfg, ident, n)
        rate, _ = asyncio.run(_drain(cfg, n))
        return rate
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
        pg.destroy()
        shutil.rmtree(d, ignore_errors=True)


def run(n: int = 100_000) -> dict[str, float]:
    """Measure and return the figures (also used by ``mchub bench``)."""
    d = disk_dir("mchub-bench-drain-")
    proc, url, keyfile = refcloud_process(d)
    try:
        ident = identity.init(d / "identity", "bench-hub", keyfile)
        proc.stdin.write(f"bench-hub {ident.public_hex}\n")  # type: ignore[attr-defined]
        proc.stdin.flush()  # type: ignore[attr-defined]
        proc.stdout.readline()  # type: ignore[attr-defined]
        (d / "hub.toml").write_text(f'[hub]\nidentity_dir = "identity"\n[sync]\nurl = "{url}"\nretention_days = 30\n'
                                    f'batch_max_records = 5000\n[storage]\nmin_free_mb = 0\n', encoding="utf-8")
        cfg = config.load(d / "hub.toml")
        t = time.perf_counter()
        _fill(cfg, ident, n)
        fill_rate = n / (time.perf_counter() - t)
        rate, per_reading = asyncio.run(_drain(cfg, n))
    finally:
        proc.terminate()  # type: ignore[attr-defined]
        proc.wait()  # type: ignore[attr-defined]
        shutil.rmtree(d)
    return {"drain to reference receiver readings/s": round(rate),
            "drain to mchub cloud on PostgreSQL (fsync on) readings/s": round(drain_to_real_cloud(n)),
            "drain bytes on the wire per reading": round(per_reading, 1),
            "backlog fill (ledger only) readings/s": round(fill_rate)}


if __name__ == "__main__":
    print(machine())
    for name, value in run(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000).items():
        print(f"{name:<48} {value:>12,}")
