"""Run, probe, kill and restart child processes: for ``mchub demo`` and system tests.

    group = ProcessGroup(log_dir)
    cloud = await group.start("cloud", ["mchub", "cloud", "serve", ...], ready=http_ready(url))
    await group.kill("cloud")          # SIGKILL, like a power cut
    await group.restart("cloud")       # same command, waits until ready again
    await group.stop_all()             # SIGTERM, then SIGKILL after a grace period

Each child writes stdout and stderr to ``<log_dir>/<name>.log`` (appended across
restarts, so a technician can read the whole story). A child that exits while we wait
for it to become ready fails the wait with the last lines of its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Probe = Callable[[], Awaitable[bool]]


class ProcessError(RuntimeError):
    """A child could not be started or did not become ready; the message quotes its log."""


def tcp_ready(port: int, host: str = "127.0.0.1") -> Probe:
    """Ready when something accepts TCP connections on host:port."""

    async def probe() -> bool:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            return False
        writer.close()
        return True

    return probe


def http_ready(url: str) -> Probe:
    """Ready when ``url`` answers 2xx."""

    async def probe() -> bool:
        def get() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URLs we build
                    return 200 <= response.status < 300
            except (urllib.error.URLError, OSError):
                return False

        return await asyncio.to_thread(get)

    return probe


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Child:
    """One managed process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    ready: Probe | None
    log: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc is not None and self.proc.returncode is None


@dataclass
class ProcessGroup:
    """Children started together and stopped together."""

    log_dir: Path
    children: dict[str, Child] = field(default_factory=dict)

    async def start(self, name: str, argv: Sequence[str], *, env: dict[str, str] | None = None,
                    ready: Probe | None = None, ready_within: float = 60.0) -> Child:
        """Start ``argv`` as ``name`` and wait until ``ready`` says so."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child = Child(name, list(argv), {**os.environ, **(env or {})}, ready, self.log_dir / f"{name}.log")
        self.children[name] = child
        await self._spawn(child, ready_within)
        return child

    async def _spawn(self, child: Child, ready_within: float) -> None:
        with open(child.log, "ab") as log:  # noqa: ASYNC230 - a local log, once per start
            log.write(f"\n==== start {child.starts + 1} at {time.strftime('%H:%M:%S')}: "
                      f"{' '.join(child.argv)}\n".encode())
            try:
                child.proc = await asyncio.create_subprocess_exec(
                    *child.argv, stdout=log, stderr=asyncio.subprocess.STDOUT, env=child.env,
                    start_new_session=True)
            except OSError as exc:
                raise ProcessError(f"{child.name}: cannot start {child.argv[0]}: {exc}") from exc
        child.starts += 1
        if child.ready is None:
            return
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if not child.running:
                raise ProcessError(f"{child.name} exited with code {child.proc and child.proc.returncode} "
                                   f"before it was ready; last log lines:\n{self.tail(child.name)}")
            if await child.ready():
                return
            await asyncio.sleep(0.1)
        raise ProcessError(
            f"{child.name} not ready after {ready_within:.0f}s; last log lines:\n{self.tail(child.name)}")

    def tail(self, name: str, lines: int = 15) -> str:
        """The last lines of a child's log."""
        path = self.children[name].log
        if not path.exists():
            return ""
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])

    async def kill(self, name: str) -> None:
        """SIGKILL the child (its whole process group) and reap it."""
        await self._signal(self.children[name], signal.SIGKILL, 10.0)

    async def stop(self, name: str, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        child = self.children[name]
        await self._signal(child, signal.SIGTERM, grace)
        if child.running:
            await self._signal(child, signal.SIGKILL, 10.0)

    async def restart(self, name: str, ready_within: float = 60.0) -> None:
        """Stop (if running) and start the same command again, waiting until ready."""
        child = self.children[name]
        if child.running:
            await self.stop(name)
        await self._spawn(child, ready_within)

    async def stop_all(self, grace: float = 10.0) -> None:
        """Stop every child, newest first."""
        for name in reversed(list(self.children)):
            await self.stop(name, grace)

    async def _signal(self, child: Child, sig: signal.Signals, wait: float) -> None:
        if not child.running or child.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.proc.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(child.proc.wait(), wait)
