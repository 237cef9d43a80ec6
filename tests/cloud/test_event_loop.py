"""The cloud never blocks its event loop (issue 19, finding 6).

One cloud on PostgreSQL runs in this process (uvicorn, real HTTP); a ticker task measures
the loop's lag while, beside 200 virtual hubs syncing from another process
(``mchub sim fleet``), a 10,000-row register is exported as XLSX through the web page and
failed logins keep hashing passwords (10 a second). The simulated hubs run at nice 10:
they stand for other machines. The lag is sampled against a fixed schedule (a sample for
every tick that was due, so a 2 s stall counts as the 400 late ticks it caused, not as one).
A second test checks that a failed login holds no database transaction while scrypt runs
(on SQLite every transaction shares one connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.mch import assembler
from cloud.mch.profiles import reference_profile
from cloud.records.crypto_at_rest import AtRest
from cloud.users import accounts as users
from cloud.users import totp_enrolment as user_totp
from firmware_sim.fleet import percentile
from tests.cloud.mch.conftest import add_result, add_subject, add_visit
from tests.cloud.support import make_cloud, serving
from tests.cloud.web.support import PASSWORD, WEB, sign_in

REPO = Path(__file__).resolve().parents[2]
T0 = 1_762_000_000_000  # 2025-11-01 China time
CASES = 10_000
HUBS, DURATION_S, INTERVAL_S = 200, 10.0, 10.0
PERIOD = {"start": "2025-11-01", "end": "2025-11-30"}


def _schedstats() -> dict[str, tuple[float, float]]:
    """Seconds each thread of this process has spent on a CPU and runnable but waiting for one (Linux schedstat
    fields 1 and 2; the wait is the time the OS gave to other programs), by thread id."""
    stats = {}
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended between the listing and the read
            with open(f"/proc/self/task/{tid}/schedstat", encoding="ascii") as f:
                ran, waited = f.read().split()[:2]
            stats[tid] = (int(ran) / 1e9, int(waited) / 1e9)
    return stats


class LagMeter:
    """Samples the lateness of every due tick of a fixed 5 ms schedule.

    Two figures per tick: the raw lateness, and the lateness the process itself caused: the raw one less the
    longest time any of its threads waited for a CPU since the previous tick (Linux schedstat). A machine shared
    with other jobs delays every thread, blocked or not: the loop's own thread, and a thread that holds the GIL
    while the OS runs something else, which keeps the loop waiting just as long. What the product must prove is
    that its own work (an export, a password hash, a thread holding the GIL, a file written inline) never holds
    the loop, and that shows in the second figure whatever else runs beside the test.
    """

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self.own: list[float] = []
        #: the longest stall, in ms: its lateness, the loop thread's CPU time and wait for a CPU, and the
        #: longest wait for a CPU of another thread
        self.worst = (0.0, 0.0, 0.0, 0.0)

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        start, k = loop.time(), 1
        me, before = str(threading.get_native_id()), _schedstats()
        while not stop.is_set():
            await asyncio.sleep(max(0.0, start + k * self.interval_s - loop.time()))
            now, after = loop.time(), _schedstats()
            waits = {tid: waited - before.get(tid, (0.0, 0.0))[1] for tid, (_, waited) in after.items()}
            queued = max(waits.values(), default=0.0)
            if now - (start + k * self.interval_s) > self.worst[0] / 1000:
                self.worst = tuple(1000 * x for x in (  # type: ignore[assignment]
                    now - (start + k * self.interval_s), after[me][0] - before[me][0], waits[me],
                    max((w for tid, w in waits.items() if tid != me), default=0.0)))
            before = after
            while start + k * self.interval_s <= now:
                late = now - (start + k * self.interval_s)
                self.samples.append(late)
                self.own.append(max(0.0, late - queued))
                k += 1

    def ms(self, q: float, own: bool = False) -> float:
        return 1000 * percentile(self.own if own else self.samples, q)


async def _seed(db: Database, keys_at_rest: AtRest) -> str:
    """10,000 mammography cases (one real case, cloned in SQL) and an integration user; returns its TOTP secret."""
    subject = await add_subject(db)
    await add_visit(db, subject, "s-1", T0, [], site_id="S1", hub_id="H1")
    await add_result(db, subject, "dicom", "birads", "BIRADS-MG", "2", T0 + 1000)
    await assembler.sweep(db, assembler.Context(reference_profile(), today=lambda: dt.date(2026, 11, 20)))
    async with db.transaction() as tx:
        real = [r["case_id"] for r in await tx.fetch("SELECT case_id FROM mch_cases")]
        await tx.execute(
            "INSERT INTO mch_cases (case_id, type, subject_id, site_id, screened_on, state, missing, version, derived, "
            "overrides, sources, created_ms, updated_ms) SELECT c.case_id || '-' || g, c.type, c.subject_id, "
            "c.site_id, c.screened_on, c.state, c.missing, c.version, c.derived, c.overrides, c.sources, "
            "c.created_ms, c.updated_ms FROM mch_cases c, generate_series(2, $1) g", CASES)
        await tx.execute(
            "INSERT INTO mch_records (case_id, version, payload, errors, missing, status, created_ms) "
            "SELECT r.case_id || '-' || g, r.version, r.payload, r.errors, r.missing, r.status, r.created_ms "
            "FROM mch_records r, generate_series(2, $1) g WHERE r.case_id = ANY($2::text[])", CASES, real)
    await users.create_user(db, "ops", PASSWORD, roles=["integration"], actor="test")
    secret, _ = await user_totp.enable_totp(db, keys_at_rest, "ops", actor="test")
    return secret


async def _failed_logins(db: Database, at_rest: AtRest, stop: asyncio.Event, tally: list[int]) -> None:
    """Wrong-user logins, 10 a second at most (the login route lets one address try 20 a minute)."""
    n = 0
    while not stop.is_set():
        n += 1
        paced = asyncio.create_task(asyncio.sleep(0.1))
        outcome = await users.attempt_login(db, at_rest, f"intruder-{n}", "wrong", "000000", source="test")
        assert outcome.user is None
        tally.append(1)
        await paced


async def _stored_batches(http: httpx.AsyncClient) -> int:
    found = re.search(r'mchub_batches_total\{outcome="stored"\} (\d+)', (await http.get("/metrics")).text)
    return int(found.group(1)) if found else 0


@pytest.mark.postgres
async def test_loop_lag_stays_low_while_exports_logins_and_a_fleet_run(pg_dsn: str, tmp_path: Path) -> None:
    cfg, keys = make_cloud(tmp_path / "cloud", pg_dsn, extra_toml=WEB, max_inflight=64, max_queue=512)
    at_rest = AtRest(keys.at_rest, keys.blind_index)
    db = await Database.connect(cfg.database.url, 4)
    try:
        await migrate(db)
        secret = await _seed(db, at_rest)
        async with serving(cfg) as url, httpx.AsyncClient(base_url=url, timeout=120) as web:
            await sign_in(web, "ops", secret)
            fleet = await asyncio.create_subprocess_exec(  # nice: the hubs stand for other machines
                "nice", "-n", "10", sys.executable, "-m", "mchub", "sim", "fleet", "--url", url, "--admin-token-file",
                str(tmp_path / "cloud" / "admin.token"), "--hubs", str(HUBS), "--interval", str(INTERVAL_S),
                "--duration", str(DURATION_S), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                deadline = time.monotonic() + 120
                while await _stored_batches(web) == 0:  # the fleet registered its hubs and started syncing
                    assert fleet.returncode is None and time.monotonic() < deadline, "the fleet did not start"
                    await asyncio.sleep(0.2)
                stop, meter, logins = asyncio.Event(), LagMeter(), []
                ticker = asyncio.create_task(meter.run(stop))
                login_tasks = [asyncio.create_task(_failed_logins(db, at_rest, stop, logins)) for _ in range(2)]
                exported: list[bytes] = []
                started = time.monotonic()
                while time.monotonic() - started < DURATION_S - 2:
                    r = await web.get("/ui/registers/download", params={"name": "mammography", "fmt": "xlsx",
                                                                       **PERIOD})
                    assert r.status_code == 200, r.text[:300]
                    exported.append(r.content)
                stop.set()
                await asyncio.gather(ticker, *login_tasks)
                raw_out, raw_err = await asyncio.wait_for(fleet.communicate(), 120)
                out, err = raw_out.decode(), raw_err.decode()
            finally:
                if fleet.returncode is None:
                    fleet.kill()
                    await fleet.wait()
        assert fleet.returncode == 0, out + err
        p50, p99, worst = meter.ms(0.50), meter.ms(0.99), 1000 * max(meter.samples)
        own_p99, own_worst = meter.ms(0.99, own=True), 1000 * max(meter.own)
        print(f"\nloop lag over {len(meter.samples)} ticks: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.0f} ms; "
              f"caused by this process (less the time the OS ran other programs): p99 {own_p99:.1f} ms, "
              f"max {own_worst:.0f} ms; {len(exported)} XLSX exports of {CASES} rows, {len(logins)} failed logins; "
              f"fleet: {out.strip()}; the longest stall: %.0f ms late, the loop ran %.0f ms and waited %.0f ms for a "
              "CPU, another thread waited %.0f ms" % meter.worst)
        sheet = load_workbook(io.BytesIO(exported[0]), read_only=True).active
        assert sheet is not None and sum(1 for _ in sheet.iter_rows()) == CASES + 3  # title, scope, header, cases
        assert len(exported) >= 1 and len(logins) >= 5
        # the target is p99 <= 50 ms (docs/reliability.md: 6.3 ms measured at load 7 on 2 cores), measured, not
        # asserted: a timed assertion is no benchmark. The gate is on the lag the cloud caused: on a shared
        # machine the raw figure also counts the time the OS gave other jobs (731 ms raw at load 7 with the loop
        # never blocked), and less only the loop thread's own waits for a CPU it also counted a thread the OS had
        # set aside while it held the GIL (at load 6: a 93 ms stall with the loop neither running nor queued).
        # Two CI failures (337 and 308 ms) were the cloud's own: a full garbage collection walking everything
        # startup loaded ran on the loop (409 ms of its CPU time at that load, ~150 ms quiet); the worker now
        # freezes that (cloud/server/gc_freeze.py). Under a CI machine's heaviest load the cloud's own figure still
        # grows with the requests queued ahead of a tick (110.9 ms once at load 15-20), so the gate is 250 ms:
        # it proves the loop is never blocked (the export run on the loop: 2,487 ms; in a thread, holding the
        # GIL: 603 ms; before the fix, 3,200 ms).
        assert own_p99 <= 250.0, f"event loop lag caused by the cloud: p99 {own_p99:.1f} ms (max {own_worst:.0f} ms)"
    finally:
        await db.close()


async def test_a_failed_login_holds_no_transaction_while_hashing(sqlite_cloud, monkeypatch) -> None:
    cfg, keys = sqlite_cloud
    at_rest = AtRest(keys.at_rest, keys.blind_index)
    db = await Database.connect(cfg.database.url)
    try:
        await migrate(db)
        await users.create_user(db, "ops", PASSWORD, roles=["integration"], actor="test")
        await user_totp.enable_totp(db, at_rest, "ops", actor="test")
        # every hash a login runs, and whether a transaction was open when it started and when it ended (on
        # SQLite every transaction holds the one connection's lock): the property itself, not a timing of other
        # transactions' waits (that failed once at load 15 on a 2-core CI machine: 235 ms against a 174 ms hash)
        hashes: list[tuple[bool, bool]] = []
        real_hashing = users.hashing

        async def watched(fn, *args):
            held_before = db._lock.locked()
            try:
                return await real_hashing(fn, *args)
            finally:
                hashes.append((held_before, db._lock.locked()))

        monkeypatch.setattr(users, "hashing", watched)
        for name in ("ops", "nobody", "ops", "nobody"):  # a wrong password and an unknown user, twice
            await users.attempt_login(db, at_rest, name, "wrong password", "000000")
        # nothing else runs here, so the lock is held only by a transaction of the login itself; before the fix
        # the hash ran inside it: (True, True) for every hash
        assert len(hashes) >= 4 and not any(before or after for before, after in hashes), hashes
        async with db.transaction() as tx:  # and the logins left the connection free
            assert await tx.fetchval("SELECT COUNT(*) FROM users") == 1
    finally:
        await db.close()
