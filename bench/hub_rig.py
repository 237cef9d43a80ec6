"""A real hub process with every shipped driver kind, sync, MQTT and its web pages polled.

Used by ``bench/bench_hub_rss.py`` (the soak: RSS slope and database bytes per reading),
and by hand (the short CI check is ``tests/edge/web/test_memory.py``)::

    .venv/bin/python -m bench.hub_rig --seconds 120 --trace DIR   # tracemalloc snapshots of the hub

Parts, all real processes on loopback:

* the reference receiver (``tests/support/refcloud.py``, own process) the hub syncs to;
* a throwaway Mosquitto: the hub's command channel and telemetry, and the MQTT device;
* the ``mchub sim`` simulators: ID-card reader, a5 height/weight station (poll), tanita
  station (push), Accutorr BP monitor on pseudo-terminals; Modbus station over TCP and
  over RTU on a pseudo-terminal; an MQTT device;
* the four BLE kinds through the real BLE driver against streaming simulated devices in
  the hub's process (``bench/ble_sim.py``: BlueZ is not needed);
* ``python -m mchub edge run`` itself; a poller signs in as staff and fetches the status
  page, ``/api/status``, the kiosk and a moment of each event stream, like a nurse's
  screen and a kiosk do.
"""

from __future__ import annotations

import argparse
import contextlib
import http.cookiejar
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from bench.hub_common import ROOT, disk_dir, refcloud_process

PIN = "246810"
#: the hub's driver kinds the rig runs (BLE through the bench.ble_sim plugin)
KINDS = ("idcard", "serial-station", "serial-bp", "modbus-tcp", "modbus-rtu", "mqtt",
         "ble-bp", "ble-thermometer", "ble-weight", "ble-body-composition")

TRACER = """
import os, sys, threading, time, tracemalloc
sys.path.insert(0, {root!r})
tracemalloc.start({frames!r})
out, every = {out!r}, {every!r}
import ctypes, _sqlite3
sqlite_used = ctypes.CDLL(_sqlite3.__file__).sqlite3_memory_used
sqlite_used.restype = ctypes.c_int64
def dump():
    n = 0
    while True:
        time.sleep(every)
        tracemalloc.take_snapshot().dump(os.path.join(out, f"snap-{{n:04d}}.tm"))
        rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]
        with open(os.path.join(out, "memory.log"), "a") as log:
            log.write(f"{{n}} rss_kb={{rss}} python_traced={{tracemalloc.get_traced_memory()[0]}} "
                      f"sqlite={{sqlite_used()}}\\n")
        n += 1
threading.Thread(target=dump, daemon=True).start()
from mchub.cli import main
raise SystemExit(main(sys.argv[1:]))
"""

#: compiled bytecode of the hub's modules, shared by every rig on this machine (the path mirrors the
#: sources', so any worktree may use it): an installed hub runs from compiled modules
#: (deploy/edge/install.sh), while a hub that compiles each module from source at every start (no
#: writable ``__pycache__``, or ``PYTHONDONTWRITEBYTECODE``) ends its start ~5 MB larger
PYC_DIR = Path(os.environ.get("MCHUB_BENCH_DIR", "/var/tmp")) / "mchub-rig-pycache"
#: what the hub imports, so one short process compiles it all before the hub starts
HUB_IMPORTS = ("import edge.daemon, edge.sync, edge.commands, edge.web.app, webui.conn_guard, uvicorn.main, "
               "uvicorn.lifespan.on, uvicorn.loops.asyncio, bench.ble_sim, mchub.cli, segno, serial, "
               "pymodbus.client, drivers.ble.manager, drivers.ble.bleak_transport, importlib; "
               "import drivers.registry as r; [importlib.import_module(m) for m in set(r.KIND_MODULES.values())]")


#: the installed service's interpreter settings (deploy/edge/mchub-edge.service: -OO)
SERVICE_ENV = {"PYTHONOPTIMIZE": "2"}


def bytecode_env() -> dict[str, str]:
    """The environment of a process that reads and writes compiled modules in :data:`PYC_DIR`, run as the
    installed service runs (:data:`SERVICE_ENV`)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, **SERVICE_ENV, "PYTHONPYCACHEPREFIX": str(PYC_DIR), "PYTHONPATH": str(ROOT)}


def compile_hub() -> None:
    """Compile what the hub imports into :data:`PYC_DIR` (a no-op once it is there)."""
    subprocess.run([sys.executable, "-c", HUB_IMPORTS], cwd=ROOT, env=bytecode_env(), check=True)


MODBUS_MAP = ('reading_kind = "height_weight"\nready = { address = 0, ack = "echo", ack_address = 2 }\n'
              'sequence = { address = 1, type = "u16" }\nregisters = [\n'
              '  { address = 3, type = "u16", scale = 0.1, unit = "cm", code = "8302-2" },\n'
              '  { address = 4, type = "f32", word_order = "big", unit = "kg", code = "29463-7" },\n'
              '  { address = 6, type = "u16", scale = 0.1, unit = "kg/m2", code = "39156-5" },\n]\n')


def vm_kb(pid: int, field_name: str) -> int:
    """A ``/proc/PID/status`` memory field in kB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Poller:
    """A nurse's browser and a kiosk, fetching the hub's pages in a loop (own thread)."""

    url: str
    pause: float
    fetches: int = 0
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _opener(self) -> urllib.request.OpenerDirector:
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        page = opener.open(self.url + "/login", timeout=10).read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None, "no CSRF token on the login page"
        body = urllib.parse.urlencode({"user": "nurse", "password": PIN, "csrf_token": token.group(1)}).encode()
        opener.open(self.url + "/login", data=body, timeout=10).read()
        return opener

    def _stream(self, opener: urllib.request.OpenerDirector, path: str) -> None:
        """Open an event stream, read its first event, hang up (a browser tab closing)."""
        with opener.open(self.url + path, timeout=10) as r:
            r.readline()

    def loop(self) -> None:
        opener = self._opener()
        while not self._stop.is_set():
            for path in ("/", "/api/status", "/kiosk/room-1", "/api/devices", "/?lang=en"):
                try:
                    opener.open(self.url + path, timeout=10).read()
                    self.fetches += 1
                except OSError:
                    self.errors += 1
            for path in ("/events", "/kiosk/room-1/events"):
                try:
                    self._stream(opener, path)
                    self.fetches += 1
                except OSError:
                    self.errors += 1
            self._stop.wait(self.pause)

    def start(self) -> Poller:
        self._thread = threading.Thread(target=self.loop, name="poller", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


@dataclass
class HubRig:
    """Start with :meth:`start`, stop with :meth:`stop` (or use as a context manager)."""

    rate: float = 20.0  #: patients per minute at each serial simulator; BLE/MQTT: one per 3 s
    poll_pause: float = 0.5
    trace_dir: Path | None = None  #: tracemalloc snapshots of the hub, every ``trace_every`` s
    trace_every: float = 30.0
    trace_frames: int = 12  #: 1 keeps tracemalloc's own cost low when only the totals matter
    poll: bool = True  #: poll the web pages (off: to tell the web's share of memory from the rest)
    sync: bool = True  #: sync to the reference receiver (off: the same, for sync)
    env: dict[str, str] = field(default_factory=dict)  #: extra environment of the hub process
    bytecode: bool = True  #: run the hub from compiled modules with -OO, as installed (:data:`PYC_DIR`)
    d: Path = field(default_factory=lambda: disk_dir("mchub-hub-rig-"))
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    hub: subprocess.Popen[bytes] | None = None
    poller: Poller | None = None
    _logs: list[IO[bytes]] = field(default_factory=list)

    def _sim(self, *args: str, name: str) -> subprocess.Popen[bytes]:
        log = open(self.d / f"sim-{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        proc = subprocess.Popen([sys.executable, "-m", "mchub", "--log-level", "WARNING", "sim", *args], cwd=ROOT,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def _wait_file(self, path: Path, what: str, pattern: str = "") -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if path.exists():
                text = path.read_text(errors="replace") if path.is_file() else ""
                match = re.search(pattern, text) if pattern else None
                if not pattern:
                    return ""
                if match:
                    return match.group(1)
            time.sleep(0.1)
        raise RuntimeError(f"hub rig: {what} did not appear ({path})")

    def start(self) -> HubRig:
        from edge import identity
        from provisioning.auth import hash_password
        from tests.support.services import MosquittoServer, free_port

        cloud, url, keyfile = refcloud_process(self.d)
        self.procs.append(cloud)  # type: ignore[arg-type]
        ident = identity.init(self.d / "identity", "rig-hub", keyfile)
        cloud.stdin.write(f"rig-hub {ident.public_hex}\n")  # type: ignore[attr-defined]
        cloud.stdin.flush()  # type: ignore[attr-defined]
        cloud.stdout.readline()  # type: ignore[attr-defined]
        self.broker = MosquittoServer().start()
        rate = str(self.rate)
        self._sim("idcard", "--link", str(self.d / "card"), "--rate", rate, "--count", "0", name="idcard")
        self._sim("station", "--dialect", "a5", "--mode", "poll", "--link", str(self.d / "hw"), "--rate", rate,
                  "--count", "0", "--seed", "2", name="a5")
        self._sim("station", "--dialect", "tanita-csv", "--mode", "push", "--link", str(self.d / "tanita"),
                  "--rate", rate, "--count", "0", "--seed", "3", name="tanita")
        self._sim("bp", "--link", str(self.d / "bp"), "--rate", rate, "--count", "0", "--seed", "4", name="bp")
        modbus_port = free_port()
        self._sim("modbus", "--port", str(modbus_port), "--count", "50000", name="modbus-tcp")
        self._sim("modbus", "--rtu", "--count", "50000", name="modbus-rtu")
        self._sim("mqtt", "--port", str(self.broker.port), "--device", "mq-1", "--count", "100000",
                  "--interval", "3", name="mqtt")
        rtu = self._wait_file(self.d / "sim-modbus-rtu.log", "the Modbus RTU pty", r"on (/dev/pts/\d+)")
        for link in ("card", "hw", "tanita", "bp"):
            self._wait_file(self.d / link, f"the {link} pty")
        web_port = free_port()
        self.url = f"http://127.0.0.1:{web_port}"
        ble = "".join(f'[[stations.devices]]\nid = "{k}-1"\ndriver = "soak-{k}"\ninterval = 3\n'
                      for k in KINDS if k.startswith("ble-"))
        (self.d / "hub.toml").write_text(
            '[hub]\nidentity_dir = "identity"\ndata_dir = "data"\nplugins = ["bench.ble_sim"]\n'
            + (f'[sync]\nurl = "{url}"\n' if self.sync else '') +
            f'[mqtt]\nhost = "127.0.0.1"\nport = {self.broker.port}\ntelemetry_interval_s = 5\n'
            f'[web]\nbind = "127.0.0.1"\nport = {web_port}\nsecure_cookie = false\n'
            f'[[web.users]]\nname = "nurse"\nsecret_hash = "{hash_password(PIN, log_n=12)}"\n'
            '[storage]\nmin_free_mb = 0\n'
            '[[stations]]\nid = "room-1"\n'
            f'[[stations.devices]]\nid = "card-1"\ndriver = "idcard"\naddress = "{self.d / "card"}"\n'
            'poll_interval = 0.25\n'
            f'[[stations.devices]]\nid = "hw-1"\ndriver = "serial-station"\naddress = "{self.d / "hw"}"\n'
            'dialect = "a5"\nmode = "poll"\npoll_interval = 0.4\n'
            f'[[stations.devices]]\nid = "bp-1"\ndriver = "serial-bp"\naddress = "{self.d / "bp"}"\n'
            'poll_interval = 0.4\n'
            '[[stations]]\nid = "room-2"\n'
            f'[[stations.devices]]\nid = "tanita-1"\ndriver = "serial-station"\naddress = "{self.d / "tanita"}"\n'
            'dialect = "tanita-csv"\nmode = "push"\n'
            f'[[stations.devices]]\nid = "mb-tcp-1"\ndriver = "modbus-tcp"\nhost = "127.0.0.1"\n'
            f'port = {modbus_port}\npoll_interval = 0.5\n{MODBUS_MAP}'
            f'[[stations.devices]]\nid = "mb-rtu-1"\ndriver = "modbus-rtu"\naddress = "{rtu}"\nbaudrate = 19200\n'
            f'poll_interval = 0.5\n{MODBUS_MAP}'
            f'[[stations.devices]]\nid = "mq-1"\ndriver = "mqtt"\nhost = "127.0.0.1"\nport = {self.broker.port}\n'
            '[[stations]]\nid = "room-3"\n' + ble, encoding="utf-8")
        if self.trace_dir is not None:
            self.trace_dir.mkdir(parents=True, exist_ok=True)
            head = ["-c", TRACER.format(root=str(ROOT), out=str(self.trace_dir), every=self.trace_every,
                                         frames=self.trace_frames)]
        else:
            head = ["-m", "mchub"]
        if self.bytecode:
            compile_hub()
        base = bytecode_env() if self.bytecode else {**os.environ, "PYTHONPATH": str(ROOT)}
        log = open(self.d / "hub.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        self.hub = subprocess.Popen([sys.executable, *head, "--log-level", "WARNING", "edge", "run", "--config",
                                     str(self.d / "hub.toml")], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    env={**base, **self.env})
        deadline = time.monotonic() + 90
        while True:
            if self.hub.poll() is not None:
                raise RuntimeError(f"hub exited {self.hub.returncode}: {self.log()[-3000:]}")
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url + "/login", timeout=2).close()
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"hub did not answer in 90 s: {self.log()[-3000:]}")
            time.sleep(0.2)
        if self.poll:
            self.poller = Poller(self.url, self.poll_pause).start()
        return self

    def log(self) -> str:
        """The hub's log so far."""
        return (self.d / "hub.log").read_text(errors="replace")

    @property
    def db(self) -> Path:
        return self.d / "data" / "hub.db"

    def rss_kb(self) -> int:
        """The hub's resident memory now."""
        assert self.hub is not None
        return vm_kb(self.hub.pid, "VmRSS")

    def stored(self) -> dict[str, int]:
        """Readings stored per device (type 1 records), from a read-only connection."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return dict(conn.execute("SELECT device_id, count(*) FROM records WHERE device_id IS NOT NULL "
                                     "GROUP BY device_id").fetchall())
        finally:
            conn.close()

    def db_bytes(self) -> int:
        """hub.db with its WAL."""
        return sum(p.stat().st_size for p in self.db.parent.glob("hub.db*") if p.is_file())

    def synced(self) -> tuple[int, int]:
        """(next seq - 1, acked through)."""
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            nxt, acked = conn.execute("SELECT next_seq, acked_through FROM sync_state").fetchone()
        finally:
            conn.close()
        return int(nxt) - 1, int(acked)

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()
        for proc in [self.hub, *reversed(self.procs)]:
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if getattr(self, "broker", None) is not None:
            self.broker.destroy()
            self.broker = None
        for log in self._logs:
            log.close()
        self._logs.clear()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.d, ignore_errors=True)

    def __enter__(self) -> HubRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def stop_rigs_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a CI timeout) unwind the process like Ctrl-C, so every rig's ``finally`` stops its
    hub, simulators and broker; left to the default action the process died and they ran on as orphans."""
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def main(argv: list[str] | None = None) -> int:
    """Run the rig for a while, printing RSS and what was stored (``--trace``: keep tracemalloc snapshots)."""
    p = argparse.ArgumentParser(prog="hub_rig", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--trace", type=Path, help="directory for the hub's tracemalloc snapshots")
    p.add_argument("--trace-every", type=float, default=30.0)
    p.add_argument("--keep", action="store_true", help="keep the rig's directory (logs, hub.db)")
    args = p.parse_args(argv)
    stop_rigs_on_sigterm()
    rig = HubRig(trace_dir=args.trace, trace_every=args.trace_every)
    try:
        rig.start()
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            time.sleep(10)
            print(f"t={time.monotonic() - started:5.0f}s RSS {rig.rss_kb() / 1024:6.1f} MB  stored {rig.stored()}  "
                  f"synced {rig.synced()}  web fetches {rig.poller.fetches if rig.poller else 0} "
                  f"errors {rig.poller.errors if rig.poller else 0}", flush=True)
    finally:
        if args.keep:
            rig.stop()
            print(f"kept {rig.d}")
        else:
            rig.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
