"""The hospital side of the demo: HIS (HL7 v2 over MLLP), PACS and the MCH platform.

Each peer is a simulator from :mod:`firmware_sim` wired to the cloud part that talks to
it. A part that this build does not have yet is shown as "not yet available" — the
demo never pretends it ran.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mchub.demo.cloudstats import CloudCounts
from mchub.demo.progress import PeerLine

NOT_YET = "尚未提供 not yet available in this build"


@dataclass
class Peer:
    """One hospital-side peer."""

    label: str
    available: bool = False
    why_not: str = NOT_YET
    cloud_toml: str = ""  #: the cloud.toml section wiring the cloud to this peer
    topics: tuple[str, ...] = ()  #: outbox topics (prefixes) the wind-down waits to see delivered
    counts: dict[str, int] = field(default_factory=dict)

    async def start(self) -> None:
        """Start the simulator (before the cloud, so its address can go into cloud.toml)."""

    async def stop(self) -> None:
        """Stop the simulator."""

    async def tick(self, elapsed: float) -> None:
        """Called every refresh: send what is due (e.g. HIS results, PACS studies)."""

    def line(self, cloud: CloudCounts) -> PeerLine:
        """What it did so far."""
        return PeerLine(self.label, self.why_not)

    def delivered(self) -> int:
        """Messages the peer accepted from the cloud (what the summary checks)."""
        return 0


def build_peers() -> list[Peer]:
    """The peers of this build."""
    return [Peer("HIS (HL7)"), Peer("PACS"), Peer("妇幼 MCH")]
