"""Harness of the system fault tests: real ``mchub edge run`` and ``mchub cloud serve``
processes, a device feeding the hub, a fault proxy between them, and the final
reconciliation of what the device produced against what the cloud database holds.

    cloud = CloudProc(tmp / "cloud", dsn_or_sqlite_url).start()
    rig = HubRig(tmp / "hub", cloud, device, sync_url=proxy.url)   # enrolls by hand, writes hub.toml
    proc = rig.start()                                              # `mchub edge run`
    ...faults...
    rig.wait_synced(); rig.stop(proc)
    report = reconcile(device.expected(), cloud_numbers(cloud.db_url, rig.hub_id))
    assert report.ok, report

Everything runs on loopback with free ports; processes are killed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from edge import identity
from firmware_sim.netfaults import FaultProxy, Mode
from protocol.keys import ed25519_raw
from tests.support.linedevice import LineDevice
from tests.support.services import free_port, wait_for_port
from tests.support.waiting import HANG_S

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def mchub(*args: str, cwd: Path, timeout: float = 120) -> str:
    """Run ``mchub ARGS`` to completion; returns stdout (fails loudly)."""
    result = subprocess.run([sys.executable, "-m", "mchub", *args], cwd=cwd, capture_output=True, text=True,
                            env=ENV, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"mchub {' '.join(args)} exited {result.returncode}: {result.stdout}{result.stderr}")
    return result.stdout


class CloudProc:
    """``mchub cloud serve`` as a subprocess that can be killed and restarted."""

    def __init__(self, base: Path, db_url: str, workers: int = 1, extra_toml: str = "",
                 admin_token: str | None = None) -> None:
        self.base, self.port, self.db_url = base, free_port(), db_url
        base.mkdir(parents=True, exist_ok=True)
        token = ""
        if admin_token:
            (base / "admin.token").write_text(admin_token)
            token = "admin.token"
        (base / "cloud.toml").write_text(
            f'[server]\nport = {self.port}\nworkers = {workers}\nretry_after_s = 1\n[database]\nurl = "{db_url}"\n'
            f'[keys]\ndir = "keys"\n[admin]\ntoken_file = "{token}"\n[logging]\njson = false\n{extra_toml}',
            encoding="utf-8")
        mchub("cloud", "init", "--config", "cloud.toml", cwd=base)
        mchub("cloud", "migrate", "--config", "cloud.toml", cwd=base)
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> CloudProc:
        with open(self.base / "cloud.log", "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "mchub", "cloud", "serve", "--config", "cloud.toml"],
                                         cwd=self.base, stdout=log, stderr=subprocess.STDOUT, env=ENV)
        wait_for_port(self.port, 60, self.proc)
        return self

    def kill(self) -> None:
        """SIGKILL every process of the server (the workers are its children)."""
        assert self.proc is not None
        _kill_tree(self.proc.pid)
        self.proc.wait()

    def restart(self) -> None:
        self.kill()
        self.restarts += 1
        self.start()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                _kill_tree(self.proc.pid)
                self.proc.wait()

    def log_tail(self, n: int = 2000) -> str:
        path = self.base / "cloud.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and its children (uvicorn workers)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    for child in children:
        _kill_tree(int(child))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def enroll_by_hand(cloud: CloudProc, base: Path, hub_id: str) -> None:
    """What an installer does without provisioning: fetch the cloud's keys, init the identity, register it."""
    base.mkdir(parents=True, exist_ok=True)
    keys_doc = base / "cloud-keys.json"
    with urllib.request.urlopen(cloud.url + "/api/v1/keys", timeout=10) as response:
        keys_doc.write_bytes(response.read())
    ident = identity.init(base / "identity", hub_id, keys_doc)
    mchub("cloud", "hub", "add", "--id", hub_id, "--site", "S1", "--config", "cloud.toml",
          "--public-key", ed25519_raw(ident.signer.public_key()).hex(), cwd=cloud.base)


class HubRig:
    """A hub directory enrolled by hand with ``cloud``, fed by ``device``; starts ``mchub edge run``."""

    def __init__(self, base: Path, cloud: CloudProc, device: LineDevice, hub_id: str = "clinic-7",
                 sync_url: str | None = None, sync: dict[str, object] | None = None, extra: str = "",
                 hub_extra: str = "") -> None:
        self.base, self.hub_id, self.cloud, self.device = base, hub_id, cloud, device
        enroll_by_hand(cloud, base, hub_id)
        settings: dict[str, object] = {"url": sync_url or cloud.url, "linger_ms": 20, "max_backoff_s": 0.3,
                                       "retention_days": 0, "prune_interval_s": 0, "batch_max_records": 150,
                                       **(sync or {})}
        sync_toml = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in settings.items())
        self.cfg = base / "hub.toml"
        self.cfg.write_text(
            '[hub]\nidentity_dir = "identity"\ndata_dir = "data"\nlanguage = "en"\n'
            f'plugins = ["tests.support.hubdriver"]\n{hub_extra}\n'
            f'[sync]\n{sync_toml}'
            f'[web]\nbind = "127.0.0.1"\nport = 0\n[storage]\nmin_free_mb = 0\n{extra}\n'
            '[[stations]]\nid = "room-1"\n[[stations.devices]]\nid = "dev-1"\ndriver = "test-line"\n'
            f'address = "127.0.0.1"\nport = {device.port}\n', encoding="utf-8")
        self.log = base / "hub.log"
        self.db = base / "data" / "hub.db"

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        """``mchub edge run`` with extra environment (e.g. MCHUB_CRASH_AT)."""
        full = {k: v for k, v in ENV.items() if not k.startswith("MCHUB_CRASH")}
        full.update(env)
        with open(self.log, "ab") as out:
            return subprocess.Popen([sys.executable, "-m", "mchub", "edge", "run", "--config", str(self.cfg)],
                                    cwd=ROOT, env=full, stdout=out, stderr=subprocess.STDOUT)

    def state(self) -> tuple[int, int]:
        """(next_seq, acked_through) from hub.db; (1, -1) while there is no readable database yet."""
        if not self.db.exists():
            return 1, -1
        try:
            conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
            try:
                row = conn.execute("SELECT next_seq, acked_through FROM sync_state").fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            return 1, -1
        return (int(row[0]), int(row[1])) if row else (1, -1)

    def wait_synced(self, timeout: float = HANG_S) -> int:
        """Wait until the device got every ack and the cloud acknowledged every record; returns the last seq."""
        if not self.device.done.wait(timeout):
            raise AssertionError(f"device still waits for {self.device.total - len(self.device.acked)} acks; "
                                 f"hub log: {self.log_tail()}")
        deadline = time.monotonic() + timeout
        nxt, acked = self.state()
        while time.monotonic() < deadline:
            nxt, acked = self.state()
            if acked == nxt - 1:
                return acked
            time.sleep(0.2)
        raise AssertionError(f"hub did not finish syncing: next {nxt}, acked {acked}; {self.log_tail()}")

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> int:
        """SIGTERM and wait; returns the exit code."""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        return proc.wait(HANG_S)

    def log_tail(self, n: int = 2000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


class ThreadedProxy:
    """A :class:`FaultProxy` in its own event-loop thread, for tests that drive processes synchronously."""

    def __init__(self, target_port: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.proxy = FaultProxy(target_port)

    def start(self) -> ThreadedProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.proxy.start(), self._loop).result(10)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    def set(self, mode: Mode, cut: bool = False) -> None:
        """Switch the fault mode (and reset live connections when ``cut``)."""
        def apply() -> None:
            self.proxy.mode = mode
            if cut:
                self.proxy.reset_all()
        self._loop.call_soon_threadsafe(apply)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.proxy.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@dataclass
class Reconciliation:
    """What the devices produced against what the cloud holds."""

    produced: int
    stored: int
    lost: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    unexpected: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected)

    def __str__(self) -> str:
        return (f"reconciliation: produced {self.produced}, cloud holds {self.stored}, lost {len(self.lost)}, "
                f"duplicated {len(self.duplicated)}, unexpected {len(self.unexpected)}"
                + (f" (lost e.g. {self.lost[:10]}, duplicated e.g. {self.duplicated[:10]})" if not self.ok else ""))


def reconcile(produced: Iterable[int], stored: Iterable[int]) -> Reconciliation:
    """Compare reading numbers produced by devices with those stored (a multiset)."""
    want = set(produced)
    got = Counter(stored)
    report = Reconciliation(len(want), sum(got.values()), sorted(want - set(got)),
                            sorted(n for n, c in got.items() if c > 1), sorted(set(got) - want))
    print(report)  # shown with -s and in the failure report; the figures of docs/reliability.md
    return report


def expected_readings(device: LineDevice) -> list[int]:
    """Reading numbers the device sends (the card lines are not readings)."""
    return [n for n in range(1, device.total + 1) if not (device.card_every and n % device.card_every == 0)]


def cloud_sql(db_url: str, sql: str, *args: object) -> list[tuple[object, ...]]:
    """Run one query on the cloud database (``$1`` placeholders); returns the rows as tuples."""
    if db_url.startswith("sqlite:///"):
        import re

        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"))
        try:
            return [tuple(r) for r in conn.execute(re.sub(r"\$\d+", "?", sql), args)]
        finally:
            conn.close()
    import asyncpg

    async def fetch() -> list[tuple[object, ...]]:
        con = await asyncpg.connect(db_url)
        try:
            return [tuple(r) for r in await con.fetch(sql, *args)]
        finally:
            await con.close()

    return asyncio.run(fetch())


def cloud_numbers(db_url: str, hub_id: str) -> list[int]:
    """Reading numbers (device_time ``n<k>``) stored in the cloud database, duplicates included."""
    rows = cloud_sql(db_url, "SELECT device_time FROM readings WHERE hub_id = $1 AND device_time LIKE 'n%'", hub_id)
    return [int(str(r[0])[1:]) for r in rows]
