"""The hospital side of the demo: HIS (HL7 v2 over MLLP), PACS and the MCH platform.

Each peer is a simulator from :mod:`firmware_sim` wired to the cloud part that talks to
it: the HIS receives the vitals ORU^R01 the cloud sends when a visit closes, and sends
lab results for the patients measured to the cloud's MLLP listener; the PACS sends a
breast ultrasound with a BI-RADS report over STOW-RS; the MCH platform receives the
cases the cloud assembles. A part that this build does not have is shown as "not yet
available" — the demo never pretends it ran.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass, field
from typing import Any

from firmware_sim.patients import Patient
from mchub.demo.cloudside import DemoCloud, DemoError
from mchub.demo.cloudstats import CloudCounts
from mchub.demo.progress import PeerLine
from mchub.procs import free_port

log = logging.getLogger("mchub.demo")
NOT_YET = "尚未提供 not yet available in this build"


def _cloud_sections() -> tuple[str, ...]:
    sections: tuple[str, ...] = getattr(importlib.import_module("cloud.config"), "SECTIONS", ())
    return sections


@dataclass
class Peer:
    """One hospital-side peer (the base class is a part this build does not have)."""

    label: str
    available: bool = False
    why_not: str = NOT_YET
    cloud_toml: str = ""  #: the cloud.toml section wiring the cloud to this peer
    topics: tuple[str, ...] = ()  #: outbox topics (prefixes) the wind-down waits to see delivered
    required: bool = False  #: the summary fails when this part is available but delivered nothing
    counts: dict[str, int] = field(default_factory=dict)

    async def start(self, cloud: DemoCloud) -> None:
        """Start the simulator before the cloud, so its address can go into cloud.toml."""

    async def stop(self) -> None:
        """Stop the simulator."""

    async def tick(self, elapsed: float, measured: list[Patient]) -> None:
        """Called every refresh while the cloud runs: send what is due."""

    def line(self, cloud: CloudCounts) -> PeerLine:
        """What it did so far."""
        return PeerLine(self.label, self.why_not)

    def delivered(self) -> int:
        """Messages the peer accepted from the cloud, or sent to it and had accepted."""
        return 0


@dataclass
class HisPeer(Peer):
    """The HIS: receives vitals (ORU^R01) and sends lab results to the cloud's MLLP listener."""

    receiver: Any = None
    mllp_port: int = 0
    sent_for: set[str] = field(default_factory=set)
    next_at: float = 8.0

    async def start(self, cloud: DemoCloud) -> None:
        """HisReceiver on a free port; ``[mllp]`` and ``[his]`` for the cloud."""
        from firmware_sim.his import HisReceiver

        self.receiver = HisReceiver()
        his_port = await self.receiver.start("127.0.0.1", 0)
        self.mllp_port = free_port()
        self.cloud_toml = (f'\n[mllp]\nenabled = true\nhost = "127.0.0.1"\nport = {self.mllp_port}\n'
                           'allowed_senders = ["127.0.0.1"]\n'  # the HIS simulator below, nobody else
                           f'\n[his]\nenabled = true\nhost = "127.0.0.1"\nport = {his_port}\nack_timeout_s = 10\n'
                           'sending_facility = "DEMO"\nreceiving_facility = "HOSPITAL"\n')
        self.counts.update(results_sent=0, results_acked=0)

    async def stop(self) -> None:
        """Stop listening."""
        if self.receiver is not None:
            await self.receiver.close()

    async def tick(self, elapsed: float, measured: list[Patient]) -> None:
        """Every few seconds, lab results for up to two women measured and not yet reported."""
        if elapsed < self.next_at:
            return
        self.next_at = elapsed + 6.0
        from firmware_sim.his import lab_message, send_messages

        todo = [p for p in measured if p.sex == "2" and p.group != "child" and p.national_id not in self.sent_for][:2]
        if not todo:
            return
        messages = []
        for p in todo:
            self.sent_for.add(p.national_id)
            n = 7000 + len(self.sent_for)
            msg = lab_message(n, name=p.name).replace(b"11010519491231002X", p.national_id.encode())
            messages.append(msg.replace(b"19491231", f"{p.birth_date:%Y%m%d}".encode()))
        try:
            acks = await send_messages("127.0.0.1", self.mllp_port, messages, read_timeout=10.0)
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("HIS simulator could not send results: %s", exc)
            return
        self.counts["results_sent"] += len(messages)
        self.counts["results_acked"] += sum(1 for a in acks if b"MSA|AA" in a or b"MSA|CA" in a)

    def line(self, cloud: CloudCounts) -> PeerLine:
        """HL7 out (vitals) and in (results)."""
        accepted = len(self.receiver.accepted) if self.receiver is not None else 0
        return PeerLine(self.label, f"出 out 体征 vitals ORU 已收 accepted {accepted} · 待发 pending "
                                    f"{cloud.pending('his')} · 死信 dead {cloud.by_status('dead', 'his')} | "
                                    f"入 in 检验 lab results {self.counts.get('results_acked', 0)}/"
                                    f"{self.counts.get('results_sent', 0)} AA")

    def delivered(self) -> int:
        """Vitals messages the HIS accepted."""
        return len(self.receiver.accepted) if self.receiver is not None else 0


#: the demo PACS's STOW-RS sender name (its credential is created through the admin API)
PACS_SENDER = "DEMO-PACS"


@dataclass
class PacsPeer(Peer):
    """The PACS: a breast ultrasound and a BI-RADS report per woman, over STOW-RS with its own credential."""

    url: str = ""
    sent_for: set[str] = field(default_factory=set)
    next_at: float = 12.0
    cloud: DemoCloud | None = None
    credentials: tuple[str, str] | None = None

    async def start(self, cloud: DemoCloud) -> None:
        """``[dicom]`` for the cloud (STOW-RS on the HTTP port; no C-STORE listener in the demo)."""
        self.cloud = cloud
        self.url = f"{cloud.url}/dicomweb"
        self.cloud_toml = '\n[dicom]\nenabled = true\nobject_dir = "dicom"\nscp_enabled = false\n'
        self.counts.update(studies=0, instances=0, refused=0)

    async def _credentials(self) -> tuple[str, str] | None:
        """The sender credential: created once through the admin API, its token kept in ``pacs.token`` (0600)."""
        if self.credentials is not None or self.cloud is None:
            return self.credentials
        import os

        import aiohttp

        path = self.cloud.directory / "pacs.token"
        if path.exists():
            self.credentials = (PACS_SENDER, path.read_text(encoding="utf-8").strip())
            return self.credentials
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            doc = await self.cloud.admin(http, "POST", "/admin/v1/dicom-senders",
                                         {"name": PACS_SENDER, "note": "mchub demo PACS simulator"})
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(str(doc["token"]) + "\n")
        self.credentials = (PACS_SENDER, str(doc["token"]))
        return self.credentials

    async def tick(self, elapsed: float, measured: list[Patient]) -> None:
        """Every 15 s one study for a woman measured."""
        if elapsed < self.next_at:
            return
        self.next_at = elapsed + 15.0
        from firmware_sim import pacs_data
        from firmware_sim.pacs import PacsSimError, stow

        who = next((p for p in measured if p.sex == "2" and p.group != "child"
                    and p.national_id not in self.sent_for), None)
        if who is None:
            return
        import aiohttp

        try:
            credentials = await self._credentials()
        except (DemoError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("PACS simulator has no STOW-RS credential yet: %s", exc)
            return
        self.sent_for.add(who.national_id)
        person = pacs_data.Patient(name=f"{who.name[0]}^{who.name[1:]}", national_id=who.national_id,
                                   mrn=f"PACS{len(self.sent_for):04d}", birth_date=f"{who.birth_date:%Y%m%d}")
        us = pacs_data.ultrasound(person)
        sr = pacs_data.basic_text_sr(person, birads="2", study_uid=us.StudyInstanceUID)
        try:
            answer = await stow(self.url, [pacs_data.to_part10(us), pacs_data.to_part10(sr)], credentials=credentials)
        except (PacsSimError, OSError, TimeoutError) as exc:
            log.warning("PACS simulator could not send a study: %s", exc)
            return
        self.counts["studies"] += 1
        self.counts["instances"] += len(answer.stored)
        self.counts["refused"] += len(answer.failed)
        if answer.status >= 400 and not answer.failed:  # the whole request refused (401, 413, ...)
            self.counts["refused"] += 2
            log.warning("PACS simulator: STOW-RS answered %d: %s", answer.status, answer.body)

    def line(self, cloud: CloudCounts) -> PeerLine:
        """Studies sent."""
        return PeerLine(self.label, f"影像 studies STOW-RS {self.counts.get('studies', 0)} · 已存 stored "
                                    f"{self.counts.get('instances', 0)} · 拒收 refused {self.counts.get('refused', 0)}"
                                    f" · 云端结果 cloud results {cloud.results}")

    def delivered(self) -> int:
        """Instances the cloud stored."""
        return self.counts.get("instances", 0)


@dataclass
class MchPeer(Peer):
    """The city MCH platform (:class:`firmware_sim.mch_platform.Platform`) served on a free port."""

    platform: Any = None
    server: Any = None
    task: Any = None
    port: int = 0

    async def start(self, cloud: DemoCloud) -> None:
        """Serve the platform in this process; ``[mch]`` for the cloud."""
        import asyncio
        import contextlib

        import uvicorn

        from firmware_sim.mch_platform import Platform

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Any:  # the demo handles Ctrl-C itself
                yield

        self.platform = Platform(app_key="mchub-demo", secret=b"demo-platform-secret")
        self.port = free_port()
        self.server = _Server(uvicorn.Config(self.platform.app, host="127.0.0.1", port=self.port,
                                             log_level="warning", access_log=False, lifespan="off"))
        self.task = asyncio.create_task(self.server.serve())
        self.cloud_toml = mch_toml(cloud, f"http://127.0.0.1:{self.port}", "mchub-demo", "demo-platform-secret")

    async def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            self.server.should_exit = True
            if self.task is not None:
                await self.task

    def line(self, cloud: CloudCounts) -> PeerLine:
        """Cases the platform accepted."""
        st = self.platform.state if self.platform is not None else None
        accepted = len(st.accepted) if st is not None else 0
        rejected = st.rejected if st is not None else 0
        return PeerLine(self.label, f"上报 uploads 已收 accepted {accepted} · 待传 pending "
                                    f"{cloud.pending('mch.upload')} · 拒收 refused {rejected} · 死信 dead "
                                    f"{cloud.by_status('dead', 'mch.upload')}")

    def delivered(self) -> int:
        """Cases accepted."""
        return len(self.platform.state.accepted) if self.platform is not None else 0


def mch_toml(cloud: DemoCloud, url: str, app_key: str, secret: str) -> str:
    """The cloud's ``[mch]`` section for the demo platform; the app secret goes to ``mch.secret`` (0600)."""
    import os

    cloud.directory.mkdir(parents=True, exist_ok=True)
    path = cloud.directory / "mch.secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(secret + "\n")
    return (f'\n[mch]\nenabled = true\nplatform_url = "{url}"\napp_key = "{app_key}"\nsecret_file = "{path}"\n'
            f'assemble_interval_s = 2\ndefault_site = "demo-site"\n')


def build_peers() -> list[Peer]:
    """The peers of this build: a working simulator where the cloud has the part, else a placeholder."""
    sections = _cloud_sections()
    his: Peer = Peer("HIS (HL7)")
    if {"mllp", "his"} <= set(sections):
        his = HisPeer("HIS (HL7)", available=True, topics=("his",), required=True)
    pacs: Peer = PacsPeer("PACS", available=True) if "dicom" in sections else Peer("PACS")
    mch: Peer = Peer("妇幼 MCH")
    if "mch" in sections:
        mch = MchPeer("妇幼 MCH", available=True, topics=("mch.upload",), required=True)
    return [his, pacs, mch]
