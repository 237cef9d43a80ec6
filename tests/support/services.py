"""Throwaway PostgreSQL and Mosquitto servers on free loopback ports, for tests and benchmarks.

Both are started from the Debian binaries (``postgresql``, ``mosquitto``); nothing is
mocked. When running as root (CI does), the servers run as their Debian service users,
because ``initdb``/``postgres`` refuse to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from mchub.procs import free_port

__all__ = ["MosquittoServer", "PostgresServer", "ServiceError", "free_port", "wait_for_port"]


class ServiceError(RuntimeError):
    """A throwaway server could not be started; the message says what to install or check."""


def wait_for_port(port: int, timeout: float = 120.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something accepts connections on 127.0.0.1:port (the budget only catches a hung start)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"server exited with code {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise ServiceError(f"nothing listening on 127.0.0.1:{port} after {timeout:.0f}s")


def _service_user(name: str) -> str | None:
    """The user to run a server as: None when not root, else ``name`` (or nobody)."""
    if os.geteuid() != 0:
        return None
    import pwd

    for candidate in (name, "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(candidate)
            return candidate
    raise ServiceError(f"running as root but there is no '{name}' or 'nobody' user to run the server as")


def _chown_tree(path: Path, user: str | None) -> None:
    if user is None:
        return
    import pwd

    pw = pwd.getpwnam(user)
    os.chown(path, pw.pw_uid, pw.pw_gid)


def find_pg_bin(name: str) -> str:
    """Path of a PostgreSQL server binary: Debian's versioned dir (newest first), then PATH."""
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        candidate = Path(d) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    raise ServiceError(f"PostgreSQL binary '{name}' not found: apt-get install postgresql")


class PostgresServer:
    """A private PostgreSQL cluster in a temporary directory.

    >>> pg = PostgresServer(); pg.start(); pg.dsn()  # doctest: +SKIP
    'postgresql://postgres@127.0.0.1:54321/postgres'
    """

    def __init__(self, base: Path | None = None, durable: bool = False) -> None:
        self.base = Path(base or tempfile.mkdtemp(prefix="mchub-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.user = _service_user("postgres")
        self.durable = durable  #: fsync on (benchmarks); tests run with fsync off for speed

    def _run(self, *args: str) -> None:
        result = subprocess.run(args, user=self.user, capture_output=True, text=True, cwd=self.base)
        if result.returncode != 0:
            raise ServiceError(f"{Path(args[0]).name} failed: {result.stderr.strip() or result.stdout.strip()}")

    def start(self) -> PostgresServer:
        """initdb (first time) and start; returns self."""
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        _chown_tree(self.base, self.user)
        if not self.data.exists():
            self._run(find_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                      "-E", "UTF8", "--no-locale", "--no-sync")
        opts = f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(find_pg_bin("pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.base / "log"),
                  "-w", "-t", "120", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: smart, fast or immediate)."""
        with contextlib.suppress(ServiceError):
            self._run(find_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        """Stop and delete everything."""
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        """libpq/asyncpg connection string."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name; returns its DSN."""
        self._run(find_pg_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", "postgres",
                  "-v", "ON_ERROR_STOP=1", "-q", "-c", f'CREATE DATABASE "{name}"')
        return self.dsn(name)


class MosquittoServer:
    """A private Mosquitto broker on a free loopback port (anonymous, no persistence)."""

    def __init__(self, base: Path | None = None) -> None:
        self.base = Path(base or tempfile.mkdtemp(prefix="mchub-mqtt-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> MosquittoServer:
        """Write a config and start the broker; returns self."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise ServiceError("mosquitto not found: apt-get install mosquitto")
        self.base.mkdir(parents=True, exist_ok=True)
        os.chmod(self.base, 0o755)
        conf = self.base / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\nlog_type error\nlog_type warning\n"
        )
        os.chmod(conf, 0o644)
        log = open(self.base / "log", "wb")  # noqa: SIM115 - lives as long as the broker
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                                     user=_service_user("mosquitto"))
        wait_for_port(self.port, proc=self.proc)
        return self

    def stop(self) -> None:
        """Terminate the broker."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def destroy(self) -> None:
        """Stop and delete the directory."""
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)
