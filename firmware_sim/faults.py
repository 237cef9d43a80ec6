"""Fault injection for simulated serial devices.

| fault | what the device does |
|---|---|
| ``garbage`` | line noise before the frame (a junk line for text protocols) |
| ``bad_checksum`` | the frame's checksum is wrong (text protocols without one: a garbled field) |
| ``truncate`` | the frame stops part-way, then the device is silent for a moment |
| ``disconnect`` | the frame stops part-way and the link drops (pty re-created, TCP closed) |
| ``out_of_range`` | an implausible value (e.g. 450 kg): a valid frame the hub must flag ``A`` |
| ``nan`` | a "no value" marker where a value belongs (0xFFFF, ``--``) |
| ``slow`` | the answer comes late and dribbles out a few bytes at a time |

``--faults garbage=0.1,truncate=0.05`` gives per-frame probabilities; a test passes a
``script`` instead (the fault for each successive faultable frame) so runs repeat exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

FAULTS = ("garbage", "bad_checksum", "truncate", "disconnect", "out_of_range", "nan", "slow")
#: faults after which the frame is not a valid measurement
BAD = {"bad_checksum", "truncate", "disconnect", "nan"}
BYTE_FAULTS = {"garbage", "bad_checksum", "truncate", "disconnect", "slow"}


def parse_faults(text: str) -> dict[str, float]:
    """``"garbage=0.1,slow"`` -> ``{"garbage": 0.1, "slow": 0.05}`` (bare name: 5 %)."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, rate = part.partition("=")
        if name not in FAULTS:
            raise ValueError(f"unknown fault {name!r}; choose from {', '.join(FAULTS)}")
        rates[name] = float(rate) if rate else 0.05
        if not 0 <= rates[name] <= 1:
            raise ValueError(f"fault rate for {name} must be between 0 and 1")
    return rates


@dataclass
class FaultPlan:
    """Which fault (if any) hits the next frame: random by rate, or a fixed script."""

    rates: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    script: list[str | None] | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._script = list(self.script or [])
        self.log: list[str] = []  #: faults applied, in order

    def pick(self, allowed: Iterable[str]) -> str | None:
        """The fault for a frame that may suffer any of ``allowed`` (None: send it clean)."""
        allowed = set(allowed)
        if not allowed:
            return None
        if self.script is not None:
            if not self._script:
                return None
            fault = self._script.pop(0)
            if fault is not None and fault not in allowed:
                self._script.insert(0, fault)  # keep it for a frame that can take it
                return None
        else:
            fault = None
            for name in FAULTS:
                if name in allowed and self._rng.random() < self.rates.get(name, 0.0):
                    fault = name
                    break
        if fault is not None:
            self.log.append(fault)
        return fault

    @property
    def rng(self) -> random.Random:
        """Random source for fault details (cut points, noise bytes)."""
        return self._rng


@dataclass
class SimFrame:
    """One message a simulated device sends, with what the host should make of it."""

    data: bytes
    fault: str | None = None
    line: bool = False  #: a text protocol: noise must end in CR LF to stay off the next line
    corrupt: Callable[[bytes], bytes] | None = None  #: the protocol's own way to break its checksum
    on_sent: Callable[[], None] | None = None  #: runs just before sending (not if dropped); may set ``data``


def noise(rng: random.Random, line: bool, avoid: bytes = b"") -> bytes:
    """A burst of line noise (never containing the bytes in ``avoid``)."""
    if line:
        return bytes(rng.choice(b"#$%&*+-/<=?@^_~x") for _ in range(rng.randint(3, 12))) + b"\r\n"
    pool = [b for b in range(256) if b not in avoid]
    return bytes(rng.choice(pool) for _ in range(rng.randint(1, 12)))
