"""The demo's hubs: a directory, hub.toml, an identity, ``mchub edge run`` and its status API.

Each hub reaches the cloud through its own :class:`~firmware_sim.netfaults.FaultProxy`,
the network cable the demo pulls to take a clinic offline (``refuse`` new connections and
reset the live ones) and plugs back in.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from firmware_sim.netfaults import FaultProxy, Mode
from mchub.demo import parts
from mchub.demo.cloudside import DemoError
from mchub.demo.devices import StationRig
from mchub.procs import ProcessError, ProcessGroup, free_port, tcp_ready


@dataclass
class DemoHub:
    """One clinic hub with its stations."""

    label: str  #: hub-A, hub-B: the demo's name (directory, log file); the cloud's id is ``hub_id``
    directory: Path
    rigs: list[StationRig]
    proxy: FaultProxy
    mqtt: tuple[str, int] | None = None
    web_port: int = field(default_factory=free_port)
    offline: bool = False
    offline_spells: int = 0
    hub_id: str = ""  #: the id the cloud knows (the label, or what enrollment assigned)

    def __post_init__(self) -> None:
        self.hub_id = self.hub_id or self.label

    @property
    def name(self) -> str:
        """How the display names the hub: ``hub-A`` or ``hub-A (S1-h01)``."""
        return self.label if self.hub_id == self.label else f"{self.label} ({self.hub_id})"

    @property
    def config(self) -> Path:
        """hub.toml."""
        return self.directory / "hub.toml"

    @property
    def url(self) -> str:
        """The hub's web server (status API, pages)."""
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def cloud_url(self) -> str:
        """The cloud as this hub sees it: through its proxy."""
        return f"http://127.0.0.1:{self.proxy.port}"

    def write_config(self) -> None:
        """hub.toml: sync through the proxy, quick retries, the stations' serial devices."""
        mqtt = f'\n[mqtt]\nhost = "{self.mqtt[0]}"\nport = {self.mqtt[1]}\ntelemetry_interval_s = 5\n' \
            if self.mqtt else ""
        web = parts.hub_web_toml(self.directory)
        self.config.write_text(
            "# written by `mchub demo`\n"
            '[hub]\nidentity_dir = "identity"\ndata_dir = "data"\nlanguage = "zh-CN"\n'
            'plugins = ["mchub.demo.blebridge"]  # the Bluetooth BP monitors of the first stations\n'
            "simulated = true  # every device here is a simulator: each reading is flagged simulated\n\n"
            f'[sync]\nurl = "{self.cloud_url}"\nlinger_ms = 200\ntimeout_s = 5\nmax_backoff_s = 2\n'
            f'retention_days = 30\n{mqtt}\n'
            f'[web]\nbind = "127.0.0.1"\nport = {self.web_port}\n{web}\n[storage]\nmin_free_mb = 50\n'
            + "".join(rig.hub_toml() for rig in self.rigs),
            encoding="utf-8")

    async def start(self, group: ProcessGroup) -> None:
        """``mchub edge run`` until its status API answers."""
        try:
            await group.start(self.label, [sys.executable, "-m", "mchub", "edge", "run", "--config",
                                            str(self.config)],
                              ready=tcp_ready(self.web_port), ready_within=90)
        except ProcessError as exc:
            raise DemoError(f"hub {self.name} did not start: {exc}") from exc

    def go_offline(self) -> None:
        """Pull the cable: refuse new connections to the cloud and reset the open ones."""
        self.proxy.mode = Mode(refuse=True)
        self.proxy.reset_all()
        self.offline = True
        self.offline_spells += 1

    def go_online(self) -> None:
        """Plug it back in."""
        self.proxy.mode = Mode()
        self.offline = False

    def headers(self) -> dict[str, str]:
        """The console token (``data/console.token``) when the hub's API is behind a login."""
        token = self.directory / "data" / "console.token"
        if token.exists():
            return {"Authorization": f"Bearer {token.read_text(encoding='utf-8').strip()}"}
        return {}

    async def status(self, http: aiohttp.ClientSession) -> dict[str, Any] | None:
        """GET /api/status, or None when the hub does not answer."""
        try:
            async with http.get(f"{self.url}/api/status", headers=self.headers(),
                                timeout=aiohttp.ClientTimeout(total=3)) as resp:
                if resp.status != 200:
                    return None
                doc: dict[str, Any] = await resp.json()
                return doc
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def post(self, http: aiohttp.ClientSession, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST to the hub's API (staff entry, closing a session); DemoError on refusal."""
        async with http.post(f"{self.url}{path}", json=body, headers=self.headers(),
                             timeout=aiohttp.ClientTimeout(total=10)) as resp:
            doc: dict[str, Any] = await resp.json(content_type=None)
            if resp.status >= 300:
                raise DemoError(f"hub {self.name}: POST {path}: HTTP {resp.status}: {doc}")
            return doc
