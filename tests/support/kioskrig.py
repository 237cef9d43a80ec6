"""One measuring station's devices, simulated and played step by step by a test (for kiosk tests).

* an ID-card reader (:class:`firmware_sim.idcard_sim.IdCardReaderSim`, SAM serial protocol)
  on a pseudo-terminal: :meth:`StationRig.place_card` puts a card on it;
* a height/weight station (:class:`firmware_sim.station_sim.StationSim`, A5 dialect, push)
  on a pseudo-terminal: :meth:`StationRig.step_on` makes it send one measurement;
* a Bluetooth BP monitor (:mod:`mchub.demo.blebridge` inside the hub):
  :meth:`StationRig.inflate` sends intermediate cuff pressures, :meth:`StationRig.bp` the result.

The simulators run in their own thread and event loop, so a synchronous (Playwright) test
can drive them; :meth:`hub_toml_station` gives the station's hub.toml tables.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Iterator
from typing import Any

from firmware_sim.ble.encode import BloodPressure
from firmware_sim.faults import FaultPlan
from firmware_sim.idcard_sim import CardVisit, IdCardReaderSim
from firmware_sim.patients import Patient
from firmware_sim.serial_host import PtyEndpoint, serve
from firmware_sim.station_sim import StationSim, Visit
from tests.support.waiting import HANG_S


class GatedCardReader(IdCardReaderSim):
    """A reader that has a card only after the test placed one."""

    def __init__(self) -> None:
        self.queue: collections.deque[CardVisit] = collections.deque()
        super().__init__(self._take(), FaultPlan({}))

    def _take(self) -> Iterator[CardVisit]:
        while True:
            yield self.queue.popleft()

    def _next_card(self) -> None:
        if self._gap is None and not self.queue:
            return  # no card on the reader
        super()._next_card()


class GatedStation(StationSim):
    """A push-mode station that measures only when the test says a patient stepped on."""

    def __init__(self, dialect: str = "a5") -> None:
        self.queue: collections.deque[Visit] = collections.deque()
        super().__init__(dialect, "push", self._take(), FaultPlan({}), interval=0.2)

    def _take(self) -> Iterator[Visit]:
        while True:
            yield self.queue.popleft()

    def tick(self, now: float) -> list[Any]:
        """Push only a queued patient's measurement."""
        return super().tick(now) if self.queue else []


class StationRig:
    """The three devices of one station, served from a background thread."""

    def __init__(self) -> None:
        self.card = GatedCardReader()
        self.scale = GatedStation()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="station-rig", daemon=True)
        self._stop = asyncio.Event()
        self._bp: asyncio.StreamWriter | None = None
        self._bp_reader: asyncio.StreamReader | None = None
        self._bp_connected = threading.Event()
        self.bp_port = 0
        self.card_path = self.scale_path = ""

    def start(self) -> StationRig:
        """Open the ptys and the BP control port; start serving."""
        self._thread.start()
        self._call(self._start())
        return self

    def _call(self, coro: Any, timeout: float = 20) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        card_end, scale_end = PtyEndpoint(), PtyEndpoint()
        self.card_path, self.scale_path = card_end.device, scale_end.device
        self._ends = [card_end, scale_end]
        self._tasks = [asyncio.create_task(serve(self.card, card_end, FaultPlan({}), self._stop, avoid=b"\xaa")),
                       asyncio.create_task(serve(self.scale, scale_end, FaultPlan({}), self._stop, avoid=b"\xa5"))]
        server = await asyncio.start_server(self._bp_session, "127.0.0.1", 0)
        self._server = server
        self.bp_port = server.sockets[0].getsockname()[1]

    async def _bp_session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._bp, self._bp_reader = writer, reader
        self._bp_connected.set()

    def stop(self) -> None:
        """Stop the simulators and close the ptys."""
        async def down() -> None:
            self._stop.set()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._server.close()
            for end in self._ends:
                end.close()
        self._call(down())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def hub_toml_station(self, station_id: str = "room-1", name: str = "") -> str:
        """``[[stations]]`` with the three devices, for hub.toml."""
        return (f'[[stations]]\nid = "{station_id}"\nname = "{name or station_id}"\nsession_window_s = 120\n'
                f'[[stations.devices]]\nid = "card-1"\ndriver = "idcard"\naddress = "{self.card_path}"\n'
                f'poll_interval = 0.1\n'
                f'[[stations.devices]]\nid = "scale-1"\ndriver = "serial-station"\ndialect = "a5"\n'
                f'mode = "push"\naddress = "{self.scale_path}"\n'
                f'[[stations.devices]]\nid = "bp-1"\ndriver = "sim-ble-bp"\ncontrol_port = {self.bp_port}\n'
                f'backoff_initial = 0.2\nbackoff_max = 1\n')

    # --- what the patient does -----------------------------------------------------------
    def place_card(self, patient: Patient) -> None:
        """Put the patient's ID card on the reader (read once, then taken away).

        ``gap=4``: the reader answers "no card" at least twice before it, even when the
        previous card is still lying there, as when a person takes hers and the next one
        puts his down (the driver needs two misses to see a card go).
        """
        self.card.queue.append(CardVisit(patient, gap=4, stay=3))

    def step_on(self, patient: Patient) -> None:
        """The patient steps on the height/weight station: one measurement is pushed."""
        self.scale.queue.append(Visit(patient))

    def inflate(self, pressures: list[int]) -> None:
        """The BP monitor sends these intermediate cuff pressures (live values)."""
        for p in pressures:
            self._send_bp("2a36", BloodPressure(p).encode())  # diastolic and mean: NaN, as the profile says

    def bp(self, systolic: int, diastolic: int, pulse: int) -> None:
        """The BP monitor's measurement."""
        mean = round(diastolic + (systolic - diastolic) / 3)
        self._send_bp("2a35", BloodPressure(systolic, diastolic, mean, pulse=pulse).encode())

    def _send_bp(self, char: str, frame: bytes) -> None:
        if not self._bp_connected.wait(HANG_S):
            raise AssertionError("the hub's BLE driver never subscribed to the simulated BP monitor")

        async def send() -> None:
            assert self._bp is not None and self._bp_reader is not None
            self._bp.write(f"{char} {frame.hex()}\n".encode())
            await self._bp.drain()
            await self._bp_reader.readline()  # "ok": the hub's driver got it

        self._call(send())
