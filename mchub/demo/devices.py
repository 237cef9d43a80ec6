"""The demo's simulated devices: per station an ID-card reader, a height/weight station and a
BP monitor, each a :mod:`firmware_sim` state machine.

The reader, the station and the serial (Accutorr-style) BP monitor sit on their own
pseudo-terminals, which the hub opens exactly as it opens USB serial adapters (``address`` =
the pty's stable link). The first station of each hub has a Bluetooth BP monitor instead
(:class:`BleBpMonitor`, the real BLE driver in the hub via :mod:`mchub.demo.blebridge`): it
sends intermediate cuff pressures while inflating, so the kiosk's live cuff screen shows in the
demo (the Accutorr's PC interface has no such value). A :class:`Feed` hands a device its next
visitor only when the demo's scenario sends the patient to it, so one patient walks through
card -> scale -> cuff in order, like in a clinic. Every device remembers what it delivered cleanly (``delivered``):
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

from firmware_sim.ble.encode import BloodPressure
from firmware_sim.faults import FaultPlan, parse_faults
from firmware_sim.idcard_sim import CardVisit, IdCardReaderSim
from firmware_sim.patients import Patient
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


#: cuff pressures a Bluetooth monitor reports while inflating, before its measurement (mmHg above 0)
CUFF_STEPS = (20, 50, 80, 110, 140, 160)
CUFF_EVERY_S = 0.4  #: between two cuff pressures: the kiosk shows each one
BLE_CONNECT_S = 30.0  #: how long the monitor waits for the hub's driver to subscribe


@dataclass
class BleBpMonitor:
    """A Bluetooth BP monitor: the hub's ``sim-ble-bp`` driver (:mod:`mchub.demo.blebridge`) connects to
    this monitor's control port; :meth:`measure` sends the cuff pressures, then the measurement."""

    device_id: str
    kind: str = "bp"
    delivered: list[Values] = field(default_factory=list)  #: measurements the hub's driver took
    port: int = 0
    _server: asyncio.Server | None = None
    _link: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    _linked: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        """Listen for the hub's peripheral on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._link = (reader, writer)  # a reconnecting driver replaces the old link
        self._linked.set()

    async def stop(self) -> None:
        """Close the link and the port."""
        if self._link is not None:
            self._link[1].close()
        if self._server is not None:
            self._server.close()

    async def _send(self, char: str, frame: bytes) -> None:
        await asyncio.wait_for(self._linked.wait(), BLE_CONNECT_S)
        assert self._link is not None
        reader, writer = self._link
        writer.write(f"{char} {frame.hex()}\n".encode())
        await writer.drain()
        if not await asyncio.wait_for(reader.readline(), BLE_CONNECT_S):
            raise ConnectionError(f"{self.device_id}: the hub's driver dropped the link")

    async def measure(self, p: Patient) -> None:
        """Inflate (live cuff pressures the kiosk shows), then indicate the patient's measurement."""
        for cuff in (c for c in CUFF_STEPS if c < p.systolic + 30):
            await self._send("2a36", BloodPressure(cuff).encode())
            await asyncio.sleep(CUFF_EVERY_S)
        await self._send("2a35", BloodPressure(p.systolic, p.diastolic, p.mean_pressure, pulse=p.pulse).encode())
        self.delivered.append(Values(systolic=p.systolic, diastolic=p.diastolic, mean=p.mean_pressure,
                                     pulse=p.pulse))


@dataclass
class StationRig:
    """The three devices of one station and the hub.toml lines that wire them."""

    station_id: str
    name: str = ""  #: what people call the station (一诊室); the kiosk and the status page show it
    devices: dict[str, SimDevice | BleBpMonitor] = field(default_factory=dict)

    def hub_toml(self) -> str:
        """``[[stations]]`` with its ``[[stations.devices]]`` for this rig."""
        card, hw, bp = (self.devices[k] for k in ("idcard", "station", "bp"))
        assert isinstance(card, SimDevice) and isinstance(hw, SimDevice)
        if isinstance(bp, BleBpMonitor):
            bp_toml = (f'\n[[stations.devices]]\nid = "{bp.device_id}"\ndriver = "sim-ble-bp"\n'
                       f'control_port = {bp.port}\nbackoff_initial = 0.2\nbackoff_max = 1\n')
        else:
            bp_toml = (f'\n[[stations.devices]]\nid = "{bp.device_id}"\ndriver = "serial-bp"\n'
                       f'address = "{bp.endpoint.device}"\npoll_interval = {POLL_S}\n')
        return (f'\n[[stations]]\nid = "{self.station_id}"\nname = "{self.name or self.station_id}"\n'
                f'session_window_s = 120\n'
                f'\n[[stations.devices]]\nid = "{card.device_id}"\ndriver = "idcard"\n'
                f'address = "{card.endpoint.device}"\npoll_interval = 0.25\n'
                f'\n[[stations.devices]]\nid = "{hw.device_id}"\ndriver = "serial-station"\n'
                f'address = "{hw.endpoint.device}"\ndialect = "a5"\nmode = "poll"\npoll_interval = {POLL_S}\n'
                + bp_toml)

    async def start(self) -> None:
        """Serve every device on its pty (and the Bluetooth monitor's control port)."""
        for dev in self.devices.values():
            if isinstance(dev, BleBpMonitor):
                await dev.start()
                continue
            avoid = b"\xaa" if dev.kind == "idcard" else b"\xa5"
            dev.task = asyncio.create_task(serve(dev.sim, dev.endpoint, dev.sim.plan, _never(), avoid=avoid),
                                           name=f"sim {dev.device_id}")

    async def stop(self) -> None:
        """Stop serving and close the ptys."""
        for dev in self.devices.values():
            if isinstance(dev, BleBpMonitor):
                await dev.stop()
                continue
            if dev.task is not None:
                dev.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await dev.task
            dev.endpoint.close()


def _never() -> asyncio.Event:
    return asyncio.Event()  # the rig's tasks are cancelled, never asked to stop


def build_rig(station_id: str, directory: Path, seed: int, faults: str = "", name: str = "",
              ble_bp: bool = False) -> StationRig:
    """A station's reader, scale and BP monitor (serial on fresh ptys with stable links in ``directory``;
    ``ble_bp``: a Bluetooth monitor that shows the cuff pressure live)."""
    directory.mkdir(parents=True, exist_ok=True)
    rig = StationRig(station_id, name)
    rates = parse_faults(faults) if faults else {}
    card_feed: Feed[CardVisit] = Feed()
    hw_feed: Feed[Visit] = Feed()
    bp_feed: Feed[Visit] = Feed()
    sims: list[tuple[str, IdCardReaderSim | StationSim, Feed[CardVisit] | Feed[Visit]]] = [
        ("idcard", IdCardReaderSim(card_feed, FaultPlan(dict(rates), seed=seed)), card_feed),
        ("station", StationSim("a5", "poll", hw_feed, FaultPlan(dict(rates), seed=seed + 1), POLL_S), hw_feed),
    ]
    if not ble_bp:
        sims.append(("bp", StationSim("accutorr", "poll", bp_feed, FaultPlan(dict(rates), seed=seed + 2), POLL_S),
                     bp_feed))
    suffix = {"idcard": "card", "station": "hw", "bp": "bp"}
    for kind, sim, feed in sims:
        device_id = f"{station_id}-{suffix[kind]}"
        rig.devices[kind] = SimDevice(device_id, kind, sim, PtyEndpoint(str(directory / device_id)), feed)
    if ble_bp:
        rig.devices["bp"] = BleBpMonitor(f"{station_id}-bp")
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
