"""Provisioning end to end, every part a real process: fleet CA, cloud on PostgreSQL, Mosquitto, hub.

1. ``mchub provision ca init``; ``mchub cloud user add`` makes the first admin (password + TOTP);
   ``mchub cloud serve`` runs with ``[provisioning]`` and ``[mqtt]``.
2. The admin signs in with ``mchub provision login`` and creates a site and a one-time token.
3. ``mchub edge enroll --cloud URL --token T`` on the hub, then ``mchub edge run``: a synthetic
   test device (``tests.support.synthetic``) produces readings that sync with the enrolled key (no URL,
   key or MQTT setting copied by hand).
4. ``mchub provision device add`` is pushed over MQTT and applied by the running hub.
5. ``mchub provision hub rotate`` mid-traffic: the hub gets a new certificate; no batch is refused.
6. ``mchub provision hub revoke``: the hub is told over MQTT and stops sending; every batch and
   every signed request is refused (and the cloud refuses to send it commands), the readings already
   received stay, the hub keeps its new readings locally and does not hammer the cloud.
7. The audit log shows each step; the cloud holds every reading sent before the revocation
   exactly once, gap-free.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from edge.config import SyncConfig
from provisioning import hubside, totp
from provisioning.errors import ClientError
from tests.edge.test_crash import hub_state
from tests.support.services import MosquittoServer, free_port, wait_for_port
from tests.support.waiting import HANG_S

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "Correct-Horse-9"
HUB = "dongcheng-h01"


def mchub(*args: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "mchub", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "MCHUB_LANG": "en"}, timeout=120)
    assert result.returncode == 0, f"mchub {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def spawn(args: list[str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mchub", *args], cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def query(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def go() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    return asyncio.run(go())


def readings(dsn: str) -> int:
    return int(query(dsn, "SELECT COUNT(*) AS n FROM readings WHERE hub_id = $1", HUB)[0]["n"])


def refusals(dsn: str) -> list[Any]:
    """Refused batches of the hub: entries of their own, and each refusal counted in the
    aggregated tally rows (a revoked hub's batches are refused before their signature is
    checked; [http] refusal_window_s = 1 below), one element per refusal."""
    own = query(dsn, "SELECT at_ms, reason FROM audit_log WHERE action = 'batch.refused' AND hub_id = $1", HUB)
    tallied = query(dsn, "SELECT reason, detail FROM audit_log WHERE action = 'refusal.tally' AND hub_id = $1", HUB)
    for row in tallied:
        detail = json.loads(row["detail"])
        own += [{"at_ms": detail["first_ms"], "reason": row["reason"]}] * int(detail["count"])
    return own


@pytest.mark.slow
def test_enroll_sync_push_rotate_revoke_with_real_processes(tmp_path: Path, pg_dsn: str,
                                                            mosquitto: MosquittoServer) -> None:
    # 1. fleet CA, cloud, first admin
    (tmp_path / "ca.pass").write_text("fleet CA passphrase e2e\n")
    (tmp_path / "ca.pass").chmod(0o600)
    mchub("provision", "ca", "init", "--dir", "ca", "--passphrase-file", "ca.pass", cwd=tmp_path)
    cloud_dir, port = tmp_path / "cloud", free_port()
    cloud_dir.mkdir()
    (cloud_dir / "cloud.toml").write_text(
        f'[server]\nport = {port}\n[database]\nurl = "{pg_dsn}"\n[keys]\ndir = "keys"\n[admin]\ntoken_file = ""\n'
        f'[provisioning]\nca_dir = "../ca"\npassphrase_file = "../ca.pass"\nmqtt_url = "mqtt://127.0.0.1:{mosquitto.port}"\n'
        f'[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {mosquitto.port}\n[logging]\njson = false\n'
        '[http]\nrefusal_window_s = 1\n')
    mchub("cloud", "init", "--config", "cloud.toml", cwd=cloud_dir)
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    added = mchub("cloud", "user", "add", "alice", "--role", "admin", "--password-file", "../pw",
                  "--config", "cloud.toml", cwd=cloud_dir)
    secret = re.search(r"secret: (\S+)", added)
    assert secret is not None
    cloud = spawn(["cloud", "serve", "--config", "cloud.toml"], cloud_dir, tmp_path / "cloud.log")
    hub: subprocess.Popen[bytes] | None = None
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(port, 60, cloud)

        # 2. admin: login, site, token
        session = ["--session-file", str(tmp_path / "session.json")]
        code = totp.totp(totp.decode_secret(secret.group(1)), time.time())
        mchub("provision", "login", "--cloud", url, "--user", "alice", "--password-file", "pw", "--code", code,
              *session, cwd=tmp_path)
        mchub("provision", "site", "add", "dongcheng", "--name", "东城社区卫生服务中心", *session, cwd=tmp_path)
        token = json.loads(mchub("provision", "token", "create", "--site", "dongcheng", "--expires", "1h", "--json",
                                 *session, cwd=tmp_path))["token"]

        # 3. the hub enrolls and syncs
        hub_dir = tmp_path / "hub"
        hub_dir.mkdir()
        (hub_dir / "hub.toml").write_text(
            '[hub]\nidentity_dir = "identity"\ndata_dir = "data"\nlanguage = "en"\n'
            'plugins = ["tests.support.synthetic"]\n'
            '[sync]\nlinger_ms = 20\nmax_backoff_s = 0.3\n[web]\nbind = "127.0.0.1"\nport = 0\n'
            '[storage]\nmin_free_mb = 0\n'
            '[[stations]]\nid = "room-1"\n[[stations.devices]]\nid = "syn-1"\ndriver = "synthetic"\nrate = 25\n')
        enrolled = mchub("edge", "enroll", "--cloud", url, "--token", token, "--config", "hub.toml", "--serial",
                         "PI-E2E-0001", cwd=hub_dir)
        assert HUB in enrolled
        enroll_key = hubside.load_state(hub_dir / "identity").key.public_key()
        hub = spawn(["edge", "run", "--config", "hub.toml"], hub_dir, tmp_path / "hub.log")
        wait_until("readings in the cloud", lambda: readings(pg_dsn) >= 50)

        # 4. a device registered in the cloud reaches the running hub
        got = json.loads(mchub("provision", "device", "add", "--hub", HUB, "--station", "2", "--kind", "ble-bp",
                               "--address", "AA:BB:CC:DD:EE:01", "--label", "诊室2 血压计", "--json", *session,
                               cwd=tmp_path))
        assert got["version"] == 1 and got["pushed"] is True
        wait_until("the pushed configuration on the hub",
                   lambda: hubside.load_state(hub_dir / "identity").config.version == 1)

        def reported() -> bool:  # applied version and link state come back with the hub's batches
            row = query(pg_dsn, "SELECT config_applied, devices_down FROM hubs WHERE hub_id = $1", HUB)[0]
            return bool(row["config_applied"] == 1 and "s2-ble-bp" in (row["devices_down"] or "").split(","))

        wait_until("the applied version and the device that cannot connect (no BlueZ here), in the cloud", reported)

        # 5. key rotation mid-traffic
        assert json.loads(mchub("provision", "hub", "rotate", HUB, "--json", *session, cwd=tmp_path))["pushed"]
        wait_until("the rotated key", lambda: hubside.load_state(hub_dir / "identity").key.public_key()
                   != enroll_key)
        at_rotation = readings(pg_dsn)
        wait_until("readings after the rotation", lambda: readings(pg_dsn) >= at_rotation + 50)
        assert refusals(pg_dsn) == []  # not one batch refused before the revocation
        rows = json.loads(mchub("provision", "hub", "list", "--json", *session, cwd=tmp_path))
        assert [(h["hub_id"], h["status"], h["keys"]) for h in rows] == [(HUB, "active", 2)]

        # 6. revocation
        revoked_at = int(time.time() * 1000)
        mchub("provision", "hub", "revoke", HUB, "--reason", "设备丢失 / lost", *session, cwd=tmp_path)
        wait_until("the hub told (revoke command) or refused", lambda: "the cloud revoked this hub" in
                   (tmp_path / "hub.log").read_text(errors="replace") or refusals(pg_dsn), timeout=HANG_S)
        kept = readings(pg_dsn)
        time.sleep(3)  # the hub keeps producing readings but does not hammer the cloud: it waits for sync-now
        assert readings(pg_dsn) == kept  # nothing accepted after the revocation
        # only the batches already on their way when the first refusal came back ([sync] batches_in_flight,
        # default 4): three at load 12-21 in CI. After a refusal the hub sends nothing until told to
        assert len(refusals(pg_dsn)) <= SyncConfig().batches_in_flight
        # the one fleet registry sends no command to a revoked hub: it says so instead
        forced = subprocess.run([sys.executable, "-m", "mchub", "cloud", "command", "--hub", HUB, "sync-now",
                                 "--config", "cloud.toml"], cwd=cloud_dir, capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "MCHUB_LANG": "en"}, timeout=120)
        assert forced.returncode != 0 and "revoked" in forced.stderr
        assert readings(pg_dsn) == kept
        assert all(r["reason"] == "revoked" and r["at_ms"] >= revoked_at for r in refusals(pg_dsn))
        state = hubside.load_state(hub_dir / "identity")
        for call in (lambda: hubside.fetch_config(state), lambda: hubside.rotate(hub_dir / "identity")):
            with pytest.raises(ClientError) as err:
                call()
            assert err.value.http_status == 403
        stop(hub)
        next_seq, acked = hub_state(hub_dir / "data" / "hub.db")
        assert next_seq - 1 > acked  # the hub keeps what it could not send

        # 7. exactly once, gap-free, and the audit trail of every step
        span = query(pg_dsn, "SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS d, MIN(seq) AS lo, MAX(seq) AS hi "
                             "FROM readings WHERE hub_id = $1", HUB)[0]
        assert span["n"] == span["d"] == span["hi"] - span["lo"] + 1 == kept and span["lo"] == 1
        assert span["hi"] == acked
        entries = json.loads(mchub("provision", "audit", "--limit", "500", "--json", *session, cwd=tmp_path))
        actions = [e["action"] for e in entries]
        for step in ("user.add", "admin.login", "site.add", "token.create", "hub.enroll", "device.add",
                     "hub.rotate.request", "hub.rotate", "hub.revoke"):
            assert step in actions, (step, actions)
        # the revoked hub's refused batches: its own entries, or counted in the aggregated tally rows;
        # a hub told by the revoke command before its next batch sends nothing that could be refused
        told = "the cloud revoked this hub" in (tmp_path / "hub.log").read_text(errors="replace")
        assert told or {"batch.refused", "refusal.tally"} & set(actions), actions
        order = [a for a in actions if a in {"hub.enroll", "hub.rotate", "hub.revoke"}]
        assert order == ["hub.enroll", "hub.rotate", "hub.revoke"]
    finally:
        if hub is not None:
            stop(hub)
        stop(cloud)
