"""The demo's simulated devices: per station an ID-card reader, a height/weight station and a
BP monitor, each a :mod:`firmware_sim` state machine on its own pseudo-terminal.

The hub opens the ptys exactly as it opens USB serial adapters (``address`` = the pty's
stable link). A :class:`Feed` hands a device its next visitor only when the demo's
scenario sends the patient to it, so one patient walks through card -> scale -> cuff in
order, like in a clinic. Every device remembers what it delivered cleanly (``delivered``):
that is what the reconciliation expects to find in the cloud, exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from firmware_sim.faults import FaultPlan, parse_faults
from firmware_sim.idcard_sim import CardVisit, IdCardReaderSim
from firmware_sim.serial_host import PtyEndpoint, serve
from firmware_sim.station_sim import StationSim, Values, Visit

T = TypeVar("T")
POLL_S = 0.4  #: the hub's poll interval for the scale and the BP monitor in the demo


class Feed(Generic[T]):
    """An iterator that is empty until the scenario pushes the next visitor.

    The simulators pull ``next()`` when the platform (or the reader) is free; an empty
    feed raises StopIteration, which they read as "nobody there", and they ask again on
    the next poll.
    """

    def __init__(self) -> None:
        self._queue: deque[T] = deque()

    def push(self, item: T) -> None:
        """The next visitor steps up."""
        self._queue.append(item)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if not self._queue:
            raise StopIteration
        return self._queue.popleft()


@dataclass
class SimDevice:
    """One simulated device on one pty."""

    device_id: str
    kind: str  #: "idcard", "station" or "bp"
    sim: IdCardReaderSim | StationSim
    endpoint: PtyEndpoint
    feed: Feed[CardVisit] | Feed[Visit]
    task: asyncio.Task[None] | None = None

    @property
    def delivered(self) -> list[str] | list[Values]:
        """What the device sent cleanly (ID numbers for the reader, values for the others)."""
        return self.sim.delivered


@dataclass
class StationRig:
    """The three devices of one station and the hub.toml lines that wire them."""

    station_id: str
    devices: dict[str, SimDevice] = field(default_factory=dict)

    def hub_toml(self) -> str:
        """``[[stations]]`` with its ``[[stations.devices]]`` for this rig."""
        card, hw, bp = (self.devices[k] for k in ("idcard", "station", "bp"))
        return (f'\n[[stations]]\nid = "{self.station_id}"\nname = "{self.station_id}"\nsession_window_s = 120\n'
                f'\n[[stations.devices]]\nid = "{card.device_id}"\ndriver = "idcard"\n'
                f'address = "{card.endpoint.device}"\npoll_interval = 0.25\n'
                f'\n[[stations.devices]]\nid = "{hw.device_id}"\ndriver = "serial-station"\n'
                f'address = "{hw.endpoint.device}"\ndialect = "a5"\nmode = "poll"\npoll_interval = {POLL_S}\n'
                f'\n[[stations.devices]]\nid = "{bp.device_id}"\ndriver = "serial-bp"\n'
                f'address = "{bp.endpoint.device}"\npoll_interval = {POLL_S}\n')

    async def start(self) -> None:
        """Serve every device on its pty."""
        for dev in self.devices.values():
            avoid = b"\xaa" if dev.kind == "idcard" else b"\xa5"
            dev.task = asyncio.create_task(serve(dev.sim, dev.endpoint, dev.sim.plan, _never(), avoid=avoid),
                                           name=f"sim {dev.device_id}")

    async def stop(self) -> None:
        """Stop serving and close the ptys."""
        for dev in self.devices.values():
            if dev.task is not None:
                dev.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await dev.task
            dev.endpoint.close()


def _never() -> asyncio.Event:
    return asyncio.Event()  # the rig's tasks are cancelled, never asked to stop


def build_rig(station_id: str, directory: Path, seed: int, faults: str = "") -> StationRig:
    """A station's reader, scale and BP monitor on fresh ptys with stable links in ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    rig = StationRig(station_id)
    rates = parse_faults(faults) if faults else {}
    card_feed: Feed[CardVisit] = Feed()
    hw_feed: Feed[Visit] = Feed()
    bp_feed: Feed[Visit] = Feed()
    sims: list[tuple[str, IdCardReaderSim | StationSim, Feed[CardVisit] | Feed[Visit]]] = [
        ("idcard", IdCardReaderSim(card_feed, FaultPlan(dict(rates), seed=seed)), card_feed),
        ("station", StationSim("a5", "poll", hw_feed, FaultPlan(dict(rates), seed=seed + 1), POLL_S), hw_feed),
        ("bp", StationSim("accutorr", "poll", bp_feed, FaultPlan(dict(rates), seed=seed + 2), POLL_S), bp_feed),
    ]
    suffix = {"idcard": "card", "station": "hw", "bp": "bp"}
    for kind, sim, feed in sims:
        device_id = f"{station_id}-{suffix[kind]}"
        rig.devices[kind] = SimDevice(device_id, kind, sim, PtyEndpoint(str(directory / device_id)), feed)
    return rig


async def wait_for(predicate: Callable[[], bool], seconds: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until true (True) or ``seconds`` pass (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(step)
    return True
