"""Crash tests of the integration owner (`mchub cloud integrate`, SIGKILL) on PostgreSQL.

* between store and ACK: acknowledged messages are stored and processed exactly once, the
  unacknowledged ones are resent by the HIS (same MSH-10) and detected as duplicates;
* between claim and complete: the HIS has the vitals message but the ACK never reached the
  cloud; after the restart the lease expires, the same bytes (same control id) go again and
  the HIS's duplicate detection keeps it exactly once;
* the HL7 processor process (cloud/integration/hl7_process.py) goes with its owner, even
  one killed by SIGKILL, and a processor killed on its own is started again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from cloud.config import CloudConfig
from cloud.integration import queries
from cloud.integration.service import ROLE_ENV
from cloud.mllp.client import MllpSender
from cloud.mllp.db_store import COLUMN
from cloud.mllp.errors import SendError
from cloud.records.crypto_at_rest import AtRest
from firmware_sim.his import Faults, HisReceiver, lab_message
from tests.cloud.integration.test_e2e import VISITOR, cloud_with, integration_toml, processed, query, sql, until
from tests.cloud.support import ensure_site, hub, register_hub, serving
from tests.support.services import free_port, wait_for_port
from tests.support.waiting import HANG_S

pytestmark = pytest.mark.postgres


def owner(cfg: CloudConfig, log: Path) -> subprocess.Popen[bytes]:
    """`mchub cloud integrate` as a real process; ready when the MLLP port answers."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mchub", "cloud", "integrate", "--config", str(cfg.path)],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": os.getcwd()})
    wait_for_port(cfg.mllp.port, timeout=60, proc=proc)
    return proc


def processor_pids(cfg: CloudConfig) -> set[int]:
    """The HL7 processor processes started for this configuration (from /proc)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"cloud.integration.hl7_process" in cmd and str(cfg.path).encode() in cmd:
            pids.add(int(entry.name))
    return pids


def kill(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(HANG_S)


def mrn(message: bytes) -> str:
    """PID-3's MRN: unique per generated message, whatever its MSH-10."""
    return message.split(b"\rPID|1||", 1)[1].split(b"^", 1)[0].decode()


def reused_ids(n: int) -> bytes:
    """A distinct result whose MSH-10 is a small counter (1..5) shared by every message, as analysers do."""
    return lab_message(n).replace(b"|LIS%08d|" % n, b"|%d|" % (n % 5 + 1), 1)


@pytest.mark.parametrize("make", [lab_message, reused_ids], ids=["unique-ids", "reused-ids"])
async def test_sigkill_between_store_and_ack_loses_and_duplicates_nothing(
        tmp_path: Path, pg_dsn: str, make: Callable[[int], bytes]) -> None:
    cfg, keys = cloud_with(tmp_path, pg_dsn, integration_toml(free_port(), free_port()).replace(
        "[his]\nenabled = true", "[his]\nenabled = false"))
    proc = owner(cfg, tmp_path / "owner.log")
    acked: list[str] = []
    up, enough = asyncio.Event(), asyncio.Event()
    up.set()

    async def sender(lane: int) -> None:
        s = MllpSender("127.0.0.1", cfg.mllp.port, ack_timeout=5, connect_timeout=1, attempts=1, retry_delay=0)
        for message in [make(lane * 1000 + i) for i in range(20)]:
            while True:
                await up.wait()
                try:
                    await s.send(message)
                    acked.append(mrn(message))
                    if len(acked) >= 30:
                        enough.set()
                    break
                except SendError:  # the owner is gone: resend the same message (same MSH-10) once it is back
                    await s.close()
                    await asyncio.sleep(0.05)
        await s.close()

    async def killer() -> None:
        nonlocal proc
        await enough.wait()
        up.clear()
        kill(proc)  # commits in flight, ACKs unsent: what was acknowledged must be on disk
        proc = owner(cfg, tmp_path / "owner.log")
        up.set()

    await asyncio.gather(killer(), *(sender(lane) for lane in range(4)))
    await until(lambda: processed(cfg))
    stop(proc)
    at_rest = AtRest(keys.at_rest, keys.blind_index)
    stored = [mrn(at_rest.open_bytes(bytes(r["raw"]), COLUMN)) for r in await sql(
        cfg, "SELECT raw FROM hl7_inbound WHERE status = 'accepted'")]
    assert len(acked) == len(set(acked)) == 80
    assert sorted(stored) == sorted(acked)  # every acknowledged message stored, each once (resends are duplicates)
    results = await sql(cfg, "SELECT COUNT(*) AS n, COUNT(DISTINCT source_key) AS k FROM results")
    assert (results[0]["n"], results[0]["k"]) == (80 * 4, 80 * 4)  # and processed once


async def test_the_hl7_processor_process_goes_with_its_owner_and_comes_back_when_killed(
        tmp_path: Path, pg_dsn: str) -> None:
    cfg, _ = cloud_with(tmp_path, pg_dsn, integration_toml(free_port(), free_port()).replace(
        "[his]\nenabled = true", "[his]\nenabled = false"))
    proc = owner(cfg, tmp_path / "owner.log")
    try:
        async def one() -> set[int]:
            pids = processor_pids(cfg)
            return pids if len(pids) == 1 else set()

        [first] = await until(one)
        os.kill(first, signal.SIGKILL)  # the owner starts another (after RESTART_S)

        async def replaced() -> set[int]:
            pids = processor_pids(cfg)
            return pids if pids and first not in pids else set()

        assert len(await until(replaced)) == 1
        s = MllpSender("127.0.0.1", cfg.mllp.port, ack_timeout=5)
        await s.send(lab_message(1))
        await s.close()
        await until(lambda: processed(cfg))  # the new one processes
        kill(proc)  # SIGKILL: no chance to stop it, its standard input closes

        async def gone() -> bool:
            return not processor_pids(cfg)

        await until(gone)
    finally:
        if proc.poll() is None:
            stop(proc)


async def test_sigkill_between_claim_and_complete_delivers_exactly_once(
        tmp_path: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    his = HisReceiver(Faults(delay=1.0, delay_seconds=6))  # records the message, answers late
    his_port = await his.start()
    cfg, keys = cloud_with(tmp_path, pg_dsn, integration_toml(free_port(), his_port, ack_timeout_s=4, attempts=1))
    monkeypatch.setenv(ROLE_ENV, "external")  # the in-process app serves HTTP only; the owner is the process
    proc = owner(cfg, tmp_path / "owner.log")
    h = hub(keys, "H200")
    try:
        async with serving(cfg) as url, aiohttp.ClientSession() as http:
            await ensure_site(cfg, "S1")
            await register_hub(cfg, "H200", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
            h.add_visit(national_id=VISITOR)
            assert await h.sync(http, url) == 200

            async def received() -> bool:
                return bool(his.accepted)

            await until(received)
            kill(proc)  # the HIS has it; the cloud never saw the ACK
            his.faults = Faults()
            [row] = await query(cfg, queries.outbound_queue)
            assert row.status == "pending"
            proc = owner(cfg, tmp_path / "owner.log")

            async def done() -> bool:
                return [r.status for r in await query(cfg, queries.outbound_queue)] == ["done"]

            await until(done, 90)
    finally:
        stop(proc)
        await his.close()
    assert list(his.accepted) == [row.control_id]
    assert his.receipts == [row.control_id, row.control_id]  # resent with the same control id


async def test_serve_with_two_workers_runs_one_integration_owner(tmp_path: Path, pg_dsn: str) -> None:
    from tests.cloud.support import worker_process

    cfg, _ = cloud_with(tmp_path, pg_dsn, integration_toml(free_port(), free_port()).replace(
        "[his]\nenabled = true", "[his]\nenabled = false"))
    with worker_process(cfg, free_port(), tmp_path / "serve.log", workers=2):
        wait_for_port(cfg.mllp.port, timeout=60)  # the owner process bound it (the workers could not all)
        s = MllpSender("127.0.0.1", cfg.mllp.port, ack_timeout=10)
        assert (await s.send(lab_message(1))).code == "AA"
        await s.close()
        await until(lambda: processed(cfg))
    owners = (tmp_path / "serve.log").read_text().count("integration owner ready")
    assert owners == 1
