"""The hub's status page ``/`` and its live lists ``/lists`` at the end of a busy day.

The hub.db holds 200 of today's visits at four named stations (each visit one to three
readings: blood pressure, temperature, height and weight; ten of them critically high
blood pressures, so the alarm lists them) and 20 readings not bound to a patient. It is
filled through the hub's own writer (``edge.daemon.Hub`` in this process), then served by
the deployed process, ``python -m mchub edge run``, with its default limits. A signed-in
nurse fetches each page over HTTP on loopback, one request at a time.

Baseline, in the same round right beside each request: the same database reads the page
makes (every SELECT of ``StatusPage._lists``, and for ``/`` also the sync state, the last
reading per device and the activity log), run with plain ``sqlite3`` on a read-only
connection to the same hub.db, rows fetched, nothing decoded or rendered. The ratio (page /
reads) says what the hub adds on top of reading the data: decoding, judging, rendering,
auditing the view, HTTP. Each figure is min/median/max of ``ROUNDS`` rounds.

    .venv/bin/python bench/bench_hub_status.py [ROUNDS]
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import http.cookiejar
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench.common import figure, show
from bench.hub_common import ROOT, disk_dir, machine, measurements

VISITS, UNBOUND, URGENT = 200, 20, 10
ROUNDS = 21
PIN = "246810"
STATIONS = (("room-1", "一诊室"), ("room-2", "二诊室"), ("room-3", "血压台"), ("room-4", "体检台"))


def _hub_dir(d: Path, port: int) -> Path:
    """Identity and hub.toml: four named stations, one staff user, no cloud (the page needs none)."""
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from edge import identity
    from edge.identity import write_cloud_keys
    from edge.staff_secrets import write_secret_file
    from protocol.keys import RecipientPrivate
    from provisioning.auth import hash_password

    write_cloud_keys(
        d / "cloud.json", RecipientPrivate.generate().public(), ed25519.Ed25519PrivateKey.generate().public_key()
    )
    identity.init(d / "identity", "bench-hub", d / "cloud.json")
    write_secret_file(d / "staff" / "nurse.pin", hash_password(PIN, log_n=12))
    stations = "".join(f'[[stations]]\nid = "{sid}"\nname = "{name}"\n' for sid, name in STATIONS)
    cfg = d / "hub.toml"
    cfg.write_text(
        '[hub]\nidentity_dir = "identity"\ndata_dir = "data"\n'
        f'[web]\nbind = "127.0.0.1"\nport = {port}\nsecure_cookie = false\n'
        '[[web.users]]\nname = "nurse"\nsecret_file = "staff/nurse.pin"\n' + stations,
        encoding="utf-8",
    )
    return cfg


async def _fill(cfg_path: Path) -> None:
    """Today's visits and unbound readings, stored by the hub's own writer."""
    from drivers.base import Measurement
    from edge import config
    from edge.daemon import Hub
    from edge.store.ledger import IdentifyIn, ReadingIn
    from firmware_sim.patients import id_number
    from protocol import codes
    from protocol.model import Observation, Subject

    hub = Hub(config.load(cfg_path))
    await hub.start(web=False)
    ms = iter(measurements(VISITS * 3 + UNBOUND, seed=11))
    try:
        for i in range(VISITS):
            station = STATIONS[i % len(STATIONS)][0]
            nid = id_number("110105", dt.date(1950 + i % 60, 1 + i % 12, 1 + i % 28), i % 1000, "12"[i % 2])
            await hub.writer.submit(
                IdentifyIn(station, Subject(national_id=nid, name=f"患者{i:03d}号", source="idcard"))
            )
            for _ in range(1 + i % 3):
                await hub.writer.submit(ReadingIn(station, f"dev-{station}", next(ms)))
            if i < URGENT:  # a severe-range blood pressure: the page's alarm lists it
                high = (
                    Observation(code=codes.SYSTOLIC, value=186.0, unit="mm[Hg]"),
                    Observation(code=codes.DIASTOLIC, value=122.0, unit="mm[Hg]"),
                )
                await hub.writer.submit(
                    ReadingIn(
                        station,
                        f"dev-{station}",
                        Measurement(
                            kind="blood_pressure", observations=high, device_time=f"urgent-{i}", raw=b"hi%d" % i
                        ),
                    )
                )
            await hub.close_session(station, "finished")
        for k in range(UNBOUND):  # nobody identified at the station: stored unbound
            await hub.writer.submit(ReadingIn(STATIONS[k % len(STATIONS)][0], "dev-walkin", next(ms)))
    finally:
        await hub.stop()


def _raw_reads(conn: sqlite3.Connection, today_ms: int, page: bool) -> int:
    """The SELECTs the page makes, with plain sqlite3 (rows fetched, nothing decoded); returns rows read."""
    q = [
        ("SELECT * FROM sync_state WHERE id = 1", ()),
        ("SELECT at FROM records WHERE seq = (SELECT acked_through + 1 FROM sync_state)", ()),
        (
            "SELECT s.session_id, s.station_id, s.opened_at, s.closed_at, s.close_reason, s.source, "
            "s.pregnant_weeks, j.id_masked, j.name_masked FROM sessions s LEFT JOIN subjects j ON j.id = s.subject_id "
            "WHERE s.opened_at >= ? ORDER BY s.opened_at DESC LIMIT 200",
            (today_ms,),
        ),
        (
            "SELECT session_id, count(*) FROM records WHERE at >= ? AND type = 0 AND session_id IS NOT NULL "
            "GROUP BY session_id",
            (today_ms - 7 * 86_400_000,),
        ),
        (
            "SELECT session_id, at, device_id, body FROM records WHERE at >= ? AND type = 0 "
            "AND session_id IS NOT NULL ORDER BY seq",
            (today_ms,),
        ),
        (
            "SELECT seq, at, station_id, device_id, body FROM records WHERE type = 0 AND session_id IS NULL "
            "ORDER BY seq DESC LIMIT 50",
            (),
        ),
        ("SELECT count(*) FROM records WHERE type = 0 AND session_id IS NULL", ()),
        (
            "SELECT r.at, r.station_id, r.body, s.pregnant_weeks, j.name_masked, s.age_days FROM records r "
            "LEFT JOIN sessions s ON s.session_id = r.session_id LEFT JOIN subjects j ON j.id = s.subject_id "
            "WHERE r.type = 0 AND r.at >= ? ORDER BY r.seq DESC",
            (today_ms,),
        ),
        (
            "SELECT seq, type, at, station_id, device_id, enc, body, reason, refused_at, resolved_at, resolved_by, "
            "resent_seq FROM dead_letters WHERE resolved_at IS NULL OR 1 = 0 ORDER BY seq DESC LIMIT 50",
            (),
        ),
        ("SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL", ()),
    ]
    if page:
        q += [
            ("SELECT * FROM sync_state WHERE id = 1", ()),
            (
                "SELECT r.device_id, r.at, r.body FROM last_reading l JOIN records r ON r.seq = l.seq WHERE r.type = 0",
                (),
            ),
            ("SELECT at, kind, actor, detail FROM audit WHERE kind IS NOT 'view' ORDER BY id DESC LIMIT 10", ()),
        ]
    return sum(len(conn.execute(sql, args).fetchall()) for sql, args in q)


class _Nurse:
    """A signed-in browser (cookie jar) on the hub's pages."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = self.opener.open(url + "/login", timeout=10).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None, "no CSRF token on the login page"
        body = urllib.parse.urlencode({"user": "nurse", "password": PIN, "csrf_token": token.group(1)}).encode()
        self.opener.open(url + "/login", data=body, timeout=10).read()

    def get(self, path: str) -> str:
        with self.opener.open(self.url + path, timeout=30) as r:
            return str(r.read().decode())


def _serve(cfg: Path, d: Path, url: str) -> subprocess.Popen[bytes]:
    """The deployed process, answering on ``url``."""
    log = open(d / "hub.log", "wb")  # noqa: SIM115 - the process owns it until it stops
    hub = subprocess.Popen(
        [sys.executable, "-m", "mchub", "--log-level", "WARNING", "edge", "run", "--config", str(cfg)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 90
    while True:
        if hub.poll() is not None:
            raise RuntimeError(f"hub exited {hub.returncode}: {(d / 'hub.log').read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(url + "/login", timeout=2).close()
            return hub
        if time.monotonic() > deadline:
            hub.kill()
            raise RuntimeError("the hub did not answer in 90 s")
        time.sleep(0.2)


def measure(rounds: int = ROUNDS) -> dict[str, Any]:
    """Page and baseline times (ms) over ``rounds`` rounds."""
    from edge.status import start_of_today_ms
    from mchub.procs import free_port

    d = disk_dir("mchub-bench-status-")
    try:
        port = free_port()
        cfg = _hub_dir(d, port)
        asyncio.run(_fill(cfg))
        url = f"http://127.0.0.1:{port}"
        hub = _serve(cfg, d, url)
        try:
            nurse = _Nurse(url)
            html = nurse.get("/")
            assert html.count("data-visit=") == VISITS and html.count("data-unbound=") == UNBOUND, "not filled"
            assert "一诊室" in html and "room-1" not in html.split('id="entry"')[0].split("<main")[-1]
            conn = sqlite3.connect(f"file:{d / 'data' / 'hub.db'}?mode=ro", uri=True)
            out: dict[str, Any] = {}
            for path, page in (("/", True), ("/lists", False)):
                nurse.get(path)  # warm up
                times, base = [], []
                for _ in range(rounds):
                    t = time.perf_counter()
                    nurse.get(path)
                    times.append((time.perf_counter() - t) * 1000)
                    t = time.perf_counter()
                    _raw_reads(conn, start_of_today_ms(), page)
                    base.append((time.perf_counter() - t) * 1000)
                out[f"status page {path} ({VISITS} visits, {UNBOUND} unbound) ms"] = figure(times, "ms", base, 2)
            conn.close()
        finally:
            hub.terminate()
            hub.wait(30)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return out


def run() -> dict[str, Any]:
    """Figures for ``mchub bench``."""
    return measure()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else ROUNDS
    print(
        f"hub status page, {VISITS} visits today, {UNBOUND} unbound readings ({machine()}, "
        f"load {os.getloadavg()[0]:.2f})"
    )
    show(measure(n))
