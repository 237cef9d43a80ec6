"""The demo's cloud: cloud.toml, ``mchub cloud init``, ``mchub cloud serve`` and the admin API.

The cloud runs as a child process exactly as in production, on SQLite by default (the
embedded default) or on a PostgreSQL the user names with ``--postgres``. Sites and hubs
are created through the bearer-token admin API (``/admin/v1``), like the provisioning
tools and the fleet simulator do.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from mchub.procs import ProcessError, ProcessGroup, free_port, http_ready


class DemoError(Exception):
    """The demo could not set something up; the message says what and where to look."""


@dataclass
class DemoCloud:
    """One ``mchub cloud serve`` child and what the demo needs to talk to it."""

    directory: Path
    database_url: str
    mqtt: tuple[str, int] | None = None
    port: int = field(default_factory=free_port)
    extra_toml: list[str] = field(default_factory=list)  #: sections other parts add (HL7, MCH, ...)

    @property
    def url(self) -> str:
        """Base URL of the API."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def config(self) -> Path:
        """cloud.toml."""
        return self.directory / "cloud.toml"

    @property
    def admin_token(self) -> str:
        """The admin bearer token written by ``mchub cloud init``."""
        return (self.directory / "admin.token").read_text(encoding="utf-8").strip()

    def write_config(self) -> None:
        """cloud.toml for the demo: loopback, quick outbox retries, readable logs."""
        self.directory.mkdir(parents=True, exist_ok=True)
        mqtt = (f'enabled = true\nhost = "{self.mqtt[0]}"\nport = {self.mqtt[1]}' if self.mqtt
                else "enabled = false")
        self.config.write_text(
            "# written by `mchub demo`\n"
            f'[server]\nhost = "127.0.0.1"\nport = {self.port}\nworkers = 1\n\n'
            f'[database]\nurl = "{self.database_url}"\n\n'
            '[keys]\ndir = "keys"\n\n[admin]\ntoken_file = "admin.token"\n\n'
            f"[mqtt]\n{mqtt}\n\n"
            "[outbox]\nmax_attempts = 20\nbase_delay_s = 0.5\nmax_delay_s = 5.0\n\n"
            "[fleet]\ntraining_rig = true  # the HIS and MCH platform here are simulators\n\n"
            '[logging]\nlevel = "INFO"\njson = false\n' + "".join(self.extra_toml),
            encoding="utf-8")

    async def init(self) -> None:
        """``mchub cloud init``: keys and the admin token."""
        await run_command([sys.executable, "-m", "mchub", "cloud", "init", "--config", str(self.config)],
                          self.directory, "mchub cloud init")

    async def start(self, group: ProcessGroup) -> None:
        """``mchub cloud serve`` until /readyz answers."""
        try:
            await group.start("cloud", [sys.executable, "-m", "mchub", "cloud", "serve", "--config",
                                        str(self.config)], ready=http_ready(f"{self.url}/readyz"), ready_within=90)
        except ProcessError as exc:
            raise DemoError(f"the cloud did not start: {exc}") from exc

    async def admin(self, http: aiohttp.ClientSession, method: str, path: str, body: Any = None) -> Any:
        """One admin API call; DemoError with the cloud's reason on failure."""
        headers = {"Authorization": f"Bearer {self.admin_token}"}
        async with http.request(method, f"{self.url}{path}", json=body, headers=headers) as resp:
            doc = await resp.json(content_type=None)
            if resp.status >= 300:
                raise DemoError(f"admin API {method} {path}: HTTP {resp.status}: {doc}")
            return doc

    async def keys_document(self, http: aiohttp.ClientSession) -> bytes:
        """GET /api/v1/keys (what a hub installer saves as cloud.json)."""
        async with http.get(f"{self.url}/api/v1/keys") as resp:
            resp.raise_for_status()
            return await resp.read()


async def run_command(argv: list[str], cwd: Path, what: str, limit_s: float = 120) -> str:
    """Run a short command; DemoError quoting its output when it fails."""
    proc = await asyncio.create_subprocess_exec(*argv, cwd=cwd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise DemoError(f"{what} did not finish within {limit_s:.0f} s") from None
    text = out.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise DemoError(f"{what} failed (exit {proc.returncode}):\n{text.strip()}")
    return text
