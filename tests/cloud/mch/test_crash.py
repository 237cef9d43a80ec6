"""Crash test: ``mchub cloud serve`` (two workers on PostgreSQL) uploading to the platform
simulator is SIGKILLed again and again while uploads are in flight — between the claim of
a message and its completion — and restarted. The platform must end up holding every
(case, version) exactly once; resends of requests it had already accepted are answered
"duplicate" and nothing is lost."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.mch import store
from cloud.mch.profiles import reference_profile
from firmware_sim.mch_platform import Faults, Platform
from protocol.mch.records import BreastCase, CervicalCase
from tests.cloud.mch.conftest import add_subject
from tests.cloud.support import make_cloud
from tests.support.asgi import serve
from tests.support.services import free_port

CASES = 40


def spawn(cfg_path: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    """``mchub cloud serve`` with two workers, in a process group of its own."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mchub", "cloud", "serve", "--config", str(cfg_path),
                                 "--port", str(port), "--workers", "2"], stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": os.getcwd()}, start_new_session=True)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def start(cfg_path: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = spawn(cfg_path, port, log)
    for _ in range(1800):  # wait without blocking the loop (up to 90 s on a busy machine)
        assert proc.poll() is None, tail(log)
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return proc
        await asyncio.sleep(0.05)
    raise AssertionError("cloud did not start")


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the serve process and its worker processes (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
@pytest.mark.postgres
async def test_killed_between_claim_and_complete_every_version_is_accepted_once(pg_dsn: str, tmp_path: Path) -> None:
    rng = random.Random(11)
    platform = Platform(rate_per_s=100, faults=Faults(slow_rate=0.6, slow_seconds=0.3, error_rate=0.1, seed=11))
    pport, cport = free_port(), free_port()
    cfg, _ = make_cloud(tmp_path / "cloud", pg_dsn,
                        f'[mch]\nenabled = true\nplatform_url = "http://127.0.0.1:{pport}"\napp_key = "mchub"\n'
                        'rate_per_s = 20\ntimeout_s = 3\nlease_s = 1\nassemble_interval_s = 0.5\n'
                        '[outbox]\nbase_delay_s = 0.05\nmax_delay_s = 0.5\nmax_attempts = 1000\n')
    (tmp_path / "cloud" / "mch.secret").write_text("platform-secret\n")
    db = await Database.connect(pg_dsn)
    await migrate(db)
    expected = set()
    for i in range(CASES):  # half the cases get a second version while uploads run
        sid = await add_subject(db)
        case = (CervicalCase(case_id=f"CX-{i}", site_id="S1", subject_id=str(sid), screened_on="2026-01-05",
                             hpv="negative") if i % 2 else
                BreastCase(case_id=f"BR-{i}", site_id="S1", subject_id=str(sid), screened_on="2026-01-05",
                           ultrasound_birads="2"))
        async with db.transaction() as tx:
            await store.save(tx, store.Assembled(case), reference_profile(), dt.date(2026, 11, 20))
        expected.add((case.case_id, 1))
    kills = 0
    async with serve(platform.app, port=pport):
        proc = await start(cfg.path, cport, tmp_path / "cloud.log")
        try:
            for round_ in range(5):
                await asyncio.sleep(rng.uniform(0.4, 1.2))
                if round_ == 1:  # corrections while the cloud runs: v2 of some cases
                    for i in range(0, CASES, 4):
                        case_id = f"CX-{i + 1}"
                        async with db.transaction() as tx:
                            row = await tx.fetchrow("SELECT subject_id FROM mch_cases WHERE case_id = $1", case_id)
                            await store.save(tx, store.Assembled(CervicalCase(
                                case_id=case_id, site_id="S1", subject_id=str(row["subject_id"]),
                                screened_on="2026-01-05", hpv="negative", via_vili="no_abnormality")),
                                reference_profile(), dt.date(2026, 11, 20))
                kill(proc)
                kills += 1
                proc = await start(cfg.path, cport, tmp_path / "cloud.log")
            for _ in range(1800):  # up to 3 minutes on a busy machine
                async with db.transaction() as tx:
                    left = await tx.fetchval("SELECT COUNT(*) FROM outbox WHERE topic = 'mch.upload' "
                                             "AND status <> 'done'")
                if not left:
                    break
                await asyncio.sleep(0.1)
            async with db.transaction() as tx:
                finals = {(r["case_id"], r["version"]): r["status"] for r in await tx.fetch(
                    "SELECT case_id, version, status FROM mch_records")}
                dead = await tx.fetchval("SELECT COUNT(*) FROM outbox WHERE status = 'dead'")
        finally:
            kill(proc)
            await db.close()
    accepted = [(c, v) for _, c, v in platform.state.log]
    assert kills == 5 and dead == 0 and not left, (kills, dead, left)
    assert len(accepted) == len(set(accepted)), "a case version was accepted twice"
    recorded = {k for k, status in finals.items() if status == "accepted"}
    assert recorded <= set(accepted) <= set(finals)  # what the cloud calls accepted, the platform holds
    newest = {(c, max(v for c2, v in finals if c2 == c)) for c, _ in finals}
    assert newest <= set(accepted) and len(newest) == CASES  # every case's final content arrived, once
    # an older version may also have arrived (sent just before its correction superseded it)
    assert all(status in ("accepted", "superseded") for status in finals.values())
    print(f"{kills} kills, {len(accepted)} accepted, {platform.state.duplicates} resends answered duplicate, "
          f"{platform.state.requests} requests")
