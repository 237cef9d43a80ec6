"""Soak: a fleet of thousands of virtual hubs and one real hub against two cloud workers on
one PostgreSQL, sampling memory and queues, then reconciling what was sent with what is stored.

    python3 dev.py soak --minutes 30 --hubs 3000 --interval 120   # the long run (+ the long system tests)
    .venv/bin/python -m bench.soak --seconds 30 --hubs 300

Parts (all real processes on loopback): a throwaway PostgreSQL; ``mchub cloud serve
--workers 2``; ``mchub edge run`` with synthetic devices syncing to it; ``mchub sim fleet``
(firmware_sim/fleet.py) enrolling N virtual hubs that each sync a visit every INTERVAL s.
Every SAMPLE s the soak records the resident memory (VmRSS) of the hub and of each cloud
worker, the hub's unsynced queue and the cloud's pending outbox. At the end it prints the
samples, whether memory stayed flat (mean of the last half of the run after warm-up
within 10 % or 8 MB of the first half) and whether every queue drained, and reconciles:
every reading of the real hub and every record of the fleet stored exactly once.
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import machine  # noqa: E402
from tests.support.services import PostgresServer  # noqa: E402
from tests.support.system import ENV, CloudProc, cloud_sql, enroll_by_hand  # noqa: E402

HUB = "soak-hub"
#: the long variants of the system tests (each test documents its variable)
LONG_ENV = {"MCHUB_KILL_ITERATIONS": "60", "MCHUB_CRASH_ROUNDS": "5", "MCHUB_BROKER_DOWN_S": "180",
            "MCHUB_CRASH_SEED": str(int(time.time()))}


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    """Direct children of a process (the uvicorn workers of ``mchub cloud serve``)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return sorted(int(x) for x in out)


@dataclass
class Series:
    """Samples of one quantity."""

    name: str
    values: list[float] = field(default_factory=list)

    def flat(self, warmup: float = 0.3, pct: float = 10.0, abs_mb: float = 8.0) -> tuple[bool, float]:
        """(flat?, growth) comparing the mean of the 2nd half with the 1st half of the post-warm-up samples."""
        v = self.values[int(len(self.values) * warmup):]
        if len(v) < 4:
            return True, 0.0
        first, second = statistics.mean(v[:len(v) // 2]), statistics.mean(v[len(v) // 2:])
        growth = second - first
        return growth <= max(abs_mb, first * pct / 100), growth


def hub_queue(db: Path) -> int:
    """Records the hub stored but the cloud has not acknowledged."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            nxt, acked = conn.execute("SELECT next_seq, acked_through FROM sync_state").fetchone()
        finally:
            conn.close()
        return int(nxt) - 1 - int(acked)
    except (sqlite3.Error, TypeError):
        return 0


def run(seconds: float = 30.0, hubs: int = 300, interval: float = 10.0, sample_s: float = 2.0,
        devices: int = 4, rate: float = 5.0, quiet: bool = False) -> dict[str, float]:
    """Run the soak; returns the figures (``memory flat`` and ``reconciled`` are 1.0 or 0.0)."""
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    base = Path(tempfile.mkdtemp(prefix="mchub-soak-"))
    pg = PostgresServer().start()
    cloud: CloudProc | None = None
    hub: subprocess.Popen[bytes] | None = None
    fleet: subprocess.Popen[str] | None = None
    try:
        dsn = pg.create_database("soak")
        cloud = CloudProc(base / "cloud", dsn, workers=2, admin_token=secrets.token_urlsafe(24)).start()
        enroll_by_hand(cloud, base / "hub", HUB)
        count = int(rate * seconds)
        devs = "".join(f'[[stations.devices]]\nid = "syn-{i}"\ndriver = "synthetic"\nrate = {rate}\ncount = {count}\n'
                       for i in range(devices))
        cfg = base / "hub" / "hub.toml"
        cfg.write_text(f'[hub]\nidentity_dir = "identity"\ndata_dir = "data"\n'
                       f'plugins = ["tests.support.synthetic"]\n[sync]\nurl = "{cloud.url}"\n'
                       'linger_ms = 200\n[web]\nbind = "127.0.0.1"\nport = 0\n[storage]\nmin_free_mb = 0\n'
                       f'[[stations]]\nid = "room-1"\n{devs}', encoding="utf-8")
        with open(base / "hub" / "hub.log", "ab") as log:
            hub = subprocess.Popen([sys.executable, "-m", "mchub", "--log-level", "WARNING", "edge", "run",
                                    "--config", str(cfg)], cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
        fleet = subprocess.Popen([sys.executable, "-m", "mchub", "sim", "fleet", "--url", cloud.url,
                                  "--admin-token-file", str(base / "cloud" / "admin.token"), "--hubs", str(hubs),
                                  "--interval", str(interval), "--duration", str(seconds)],
                                 cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert cloud.proc is not None
        workers = children(cloud.proc.pid)
        series = {"hub RSS MB": Series("hub RSS MB"), "hub queue": Series("hub queue"),
                  "cloud outbox pending": Series("cloud outbox pending"),
                  **{f"cloud proc {i + 1} RSS MB": Series(f"cloud proc {i + 1} RSS MB")
                     for i in range(len(workers))}}
        say(f"soak: {hubs} virtual hubs every {interval:g} s + 1 hub ({devices}x{rate:g} readings/s) -> "
            f"mchub cloud serve --workers 2 (child processes {workers}) on PostgreSQL, {seconds:.0f} s")
        started = time.monotonic()
        while fleet.poll() is None:
            time.sleep(sample_s)
            series["hub RSS MB"].values.append(rss_mb(hub.pid))
            for i, pid in enumerate(workers):
                series[f"cloud proc {i + 1} RSS MB"].values.append(rss_mb(pid))
            series["hub queue"].values.append(hub_queue(base / "hub" / "data" / "hub.db"))
            pending = cloud_sql(dsn, "SELECT count(*) FROM outbox WHERE status = 'pending'")[0][0]
            series["cloud outbox pending"].values.append(float(pending))  # type: ignore[arg-type]
            if not quiet and len(series["hub RSS MB"].values) % 5 == 1:
                say(f"  t={time.monotonic() - started:5.0f}s " + "  ".join(
                    f"{s.name}={s.values[-1]:.0f}" for s in series.values()))
        fleet_out = fleet.stdout.read() if fleet.stdout else ""
        say("  fleet: " + fleet_out.strip().replace("\n", "\n  fleet: "))
        produced = devices * count  # the synthetic devices stop after `count` readings each
        deadline = time.monotonic() + max(0.0, seconds - (time.monotonic() - started)) + 120
        while time.monotonic() < deadline and (hub_queue(base / "hub" / "data" / "hub.db") > 0 or cloud_sql(
                dsn, "SELECT count(*) FROM readings WHERE hub_id = $1", HUB)[0][0] < produced):
            time.sleep(0.5)
        # reconciliation: the real hub's readings and the fleet's records, each exactly once
        hub_rows = cloud_sql(dsn, "SELECT count(*), count(DISTINCT seq) FROM readings "
                                  "WHERE hub_id = $1", HUB)[0]
        fleet_acked, fleet_records = cloud_sql(
            dsn, "SELECT (SELECT coalesce(sum(acked_through), 0) FROM sync_state WHERE hub_id <> $1), "
                 "(SELECT count(*) FROM readings WHERE hub_id <> $1) + "
                 "2 * (SELECT count(*) FROM sessions WHERE hub_id <> $1)", HUB)[0]
        hub_ok = hub_rows[0] == hub_rows[1] == produced
        fleet_ok = fleet_acked == fleet_records
        if fleet.returncode != 0:
            say(f"  NOTE the fleet simulator exited {fleet.returncode} (a batch was refused; see its output above)")
        mem = {name: s.flat() for name, s in series.items() if "RSS" in name}
        queues_drained = hub_queue(base / "hub" / "data" / "hub.db") == 0
        say("")
        for name, s in series.items():
            v = s.values
            verdict = "flat" if name in mem and mem[name][0] else "GROWING"
            extra = f"  growth {mem[name][1]:+.1f} MB -> {verdict}" if name in mem else ""
            say(f"  {name:<24} min {min(v, default=0):8.1f}  max {max(v, default=0):8.1f}  "
                f"last {v[-1] if v else 0:8.1f}{extra}")
        flat = all(ok for ok, _ in mem.values())
        say(f"  memory stayed flat: {'YES' if flat else 'NO'}; hub queue drained: {'YES' if queues_drained else 'NO'}")
        waiting = cloud_sql(dsn, "SELECT topic, count(*) FROM outbox WHERE status = 'pending' GROUP BY topic")
        for topic, n in waiting:
            say(f"  NOTE cloud outbox: {n} '{topic}' messages pending — grows with every visit until a dispatcher "
                "for that topic is configured (HIS/MCH delivery)")
        say(f"  reconciliation: hub produced {produced}, cloud holds {hub_rows[0]} ({hub_rows[1]} distinct); "
            f"fleet acknowledged {fleet_acked} records, cloud holds {fleet_records} -> "
            f"{'0 lost, 0 duplicated' if hub_ok and fleet_ok else 'MISMATCH'}")
        return {"virtual hubs": hubs, "seconds": round(seconds),
                "hub RSS max MB": round(max(series["hub RSS MB"].values, default=0), 1),
                "cloud worker RSS max MB": round(max((max(s.values, default=0) for n, s in series.items()
                                                      if n.startswith("cloud proc")), default=0), 1),
                "hub queue max": max(series["hub queue"].values, default=0),
                "fleet records acked": float(fleet_acked),  # type: ignore[arg-type]
                "memory flat": 1.0 if flat else 0.0, "queues drained": 1.0 if queues_drained else 0.0,
                "reconciled": 1.0 if hub_ok and fleet_ok else 0.0}
    finally:
        for proc in (fleet, hub):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        if cloud is not None:
            cloud.stop()
        pg.destroy()
        shutil.rmtree(base, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(prog="soak", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=30.0, help="how long the fleet runs (default 30)")
    p.add_argument("--minutes", type=float, help="the same in minutes")
    p.add_argument("--hubs", type=int, default=300, help="virtual hubs (default 300; thousands for a real soak)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between syncs of one virtual hub")
    p.add_argument("--sample", type=float, default=2.0, help="seconds between samples")
    p.add_argument("--system", action="store_true",
                   help="then run the system fault tests with long settings: " + " ".join(LONG_ENV))
    args = p.parse_args(argv)
    print(machine())
    figures = run(args.minutes * 60 if args.minutes else args.seconds, args.hubs, args.interval, args.sample)
    ok = bool(figures["reconciled"] and figures["memory flat"] and figures["queues drained"])
    if args.system:
        import os

        print("\nsystem fault tests, long settings: " + " ".join(f"{k}={v}" for k, v in LONG_ENV.items()), flush=True)
        code = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                               "tests/system", "tests/edge/test_crash.py", "--timeout", "3600"], cwd=ROOT,
                              env={**os.environ, **ENV, **LONG_ENV}).returncode
        ok = ok and code == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
