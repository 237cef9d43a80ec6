"""A simulated BLE health peripheral behind bleak's client API.

    air = Air()
    bp = air.add(Peripheral("ble-bp", "C4:7C:8D:00:00:01"))
    bp.sessions = [[Indicate(frame1), Disconnect()], [Indicate(frame2)]]
    bp.stored = [old_frame]                         # taken while the hub was away
    client = air.client(await air.find(SERVICE, None, 5), on_disconnect)

Each connection plays the next script in ``sessions`` once the client subscribes to the
measurement characteristic. A measurement sent live is also kept in ``stored`` (as real
monitors keep their memory) unless ``store_live`` is off; the Record Access Control Point
reports, counts and deletes those records. Errors are bleak's own exception types.

Faults: ``fail_connects`` (refuse the next N connections), :class:`Disconnect` mid-session,
any bytes via :class:`Indicate` (truncated, over-long, NaN/NRes values, garbage), a RACP
that drops the link half way (``racp_drop_after``), no RACP at all (``racp = False``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bleak.exc import BleakCharacteristicNotFoundError, BleakError


def uuid16(short: int) -> str:
    """128-bit form of a Bluetooth SIG 16-bit UUID."""
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


RACP = uuid16(0x2A52)

#: profile -> (service, measurement characteristic, other indicated characteristics)
PROFILES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "ble-bp": (uuid16(0x1810), uuid16(0x2A35), (uuid16(0x2A36),)),
    "ble-thermometer": (uuid16(0x1809), uuid16(0x2A1C), ()),
    "ble-weight": (uuid16(0x181D), uuid16(0x2A9D), ()),
    "ble-body-composition": (uuid16(0x181B), uuid16(0x2A9C), ()),
}


@dataclass(frozen=True)
class Indicate:
    """Send ``frame`` on ``char`` (default: the measurement characteristic).

    A measurement is also kept in the device's memory (``store_live``); a fault frame
    (``fault=True``: garbage, truncated, NaN) is only sent.
    """

    frame: bytes
    char: str | None = None
    fault: bool = False


@dataclass(frozen=True)
class Disconnect:
    """Drop the link (the device walks out of range or powers off)."""


@dataclass(frozen=True)
class Store:
    """Keep ``frame`` in the device's memory without sending it (a reading the hub missed)."""

    frame: bytes


@dataclass(frozen=True)
class Pause:
    """Let the event loop run ``ticks`` times (lets the hub's requests go first, deterministically)."""

    ticks: int = 50


Step = Indicate | Disconnect | Store | Pause


@dataclass(frozen=True)
class Characteristic:
    """What bleak passes as the first argument of a notification callback."""

    uuid: str


@dataclass
class Peripheral:
    """One simulated device."""

    profile: str
    address: str = "C4:7C:8D:00:00:01"
    sessions: list[list[Step]] = field(default_factory=list)
    stored: list[bytes] = field(default_factory=list)
    store_live: bool = True
    racp: bool = True
    live: bool = True  #: offers its live characteristic (intermediate cuff pressure)
    racp_drop_after: int | None = None  #: once: drop the link after sending this many stored records
    fail_connects: int = 0
    advertising: bool = True
    # observable state
    connections: int = 0
    sent: list[tuple[str, bytes]] = field(default_factory=list)
    racp_requests: list[bytes] = field(default_factory=list)
    _client: SimClient | None = None

    @property
    def service(self) -> str:
        """Advertised service UUID."""
        return PROFILES[self.profile][0]

    @property
    def measurement(self) -> str:
        """The measurement characteristic UUID."""
        return PROFILES[self.profile][1]

    def characteristics(self) -> set[str]:
        """Every characteristic a client may subscribe to."""
        _service, measurement, others = PROFILES[self.profile]
        return {measurement, *(others if self.live else ()), *([RACP] if self.racp else [])}

    # -- link ----------------------------------------------------------------
    def _attach(self, client: SimClient) -> None:
        if self._client is not None and self._client.is_connected:
            raise BleakError(f"{self.address}: already connected to another central")
        if self.fail_connects > 0:
            self.fail_connects -= 1
            raise BleakError(f"{self.address}: connection failed (simulated: device did not answer)")
        self._client = client
        self.connections += 1

    def drop(self) -> None:
        """Drop the current link, as if the device went out of range."""
        client, self._client = self._client, None
        if client is not None:
            client._lost()

    async def _play(self, client: SimClient, script: list[Step]) -> None:
        for step in script:
            await asyncio.sleep(0)
            if not client.is_connected:
                return
            if isinstance(step, Disconnect):
                self.drop()
                return
            if isinstance(step, Store):
                self.stored.append(step.frame)
                continue
            if isinstance(step, Pause):
                for _ in range(step.ticks):
                    await asyncio.sleep(0)
                continue
            self._indicate(client, step.char or self.measurement, step.frame, store=not step.fault)

    def _indicate(self, client: SimClient, char: str, frame: bytes, *, store: bool) -> None:
        self.sent.append((char, frame))
        if store and char == self.measurement and self.store_live and frame not in self.stored:
            self.stored.append(frame)
        client._deliver(char, frame)

    # -- record access control point -----------------------------------------------
    async def _racp(self, client: SimClient, request: bytes) -> None:
        self.racp_requests.append(request)
        await asyncio.sleep(0)
        if len(request) < 2:
            return self._racp_answer(client, bytes([6, 0, request[0] if request else 0, 3]))
        op, operator = request[0], request[1]
        if op == 1:  # report stored records
            if operator not in (1, 5, 6):
                return self._racp_answer(client, bytes([6, 0, 1, 4 if operator <= 6 else 3]))
            records = self.stored if operator == 1 else self.stored[:1] if operator == 5 else self.stored[-1:]
            for n, frame in enumerate(list(records)):
                if self.racp_drop_after is not None and n >= self.racp_drop_after:
                    self.racp_drop_after = None  # one-shot fault
                    self.drop()
                    return None
                await asyncio.sleep(0)
                if not client.is_connected:
                    return None
                self.sent.append((self.measurement, frame))
                client._deliver(self.measurement, frame)
            return self._racp_answer(client, bytes([6, 0, 1, 1 if records else 6]))
        if op == 2:  # delete
            if operator != 1:
                return self._racp_answer(client, bytes([6, 0, 2, 4]))
            self.stored.clear()
            return self._racp_answer(client, bytes([6, 0, 2, 1]))
        if op == 3:  # abort
            return self._racp_answer(client, bytes([6, 0, 3, 1]))
        if op == 4:  # number of records
            return self._racp_answer(client, bytes([5, 0]) + len(self.stored).to_bytes(2, "little"))
        return self._racp_answer(client, bytes([6, 0, op, 2]))

    def _racp_answer(self, client: SimClient, answer: bytes) -> None:
        if client.is_connected:
            self.sent.append((RACP, answer))
            client._deliver(RACP, answer)


class SimClient:
    """The ``bleak.BleakClient`` subset the hub uses, talking to a :class:`Peripheral`."""

    def __init__(self, peripheral: Peripheral, disconnected_callback: Callable[[Any], None] | None) -> None:
        self._peripheral = peripheral
        self._on_disconnect = disconnected_callback
        self._connected = False
        self._callbacks: dict[str, Callable[[Any, bytearray], None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def is_connected(self) -> bool:
        """True while the link is up."""
        return self._connected

    async def connect(self, **_kwargs: Any) -> None:
        """Connect (BleakError when the device refuses)."""
        await asyncio.sleep(0)
        self._peripheral._attach(self)
        self._connected = True

    async def disconnect(self) -> None:
        """Disconnect; the disconnected callback runs, as with bleak."""
        await asyncio.sleep(0)
        if self._connected:
            self._peripheral.drop()

    async def start_notify(self, char_specifier: str, callback: Callable[[Any, bytearray], None],
                           **_kwargs: Any) -> None:
        """Subscribe; subscribing to the measurement characteristic starts this session's script."""
        await asyncio.sleep(0)
        if not self._connected:
            raise BleakError("Not connected")
        if char_specifier not in self._peripheral.characteristics():
            raise BleakCharacteristicNotFoundError(char_specifier)
        self._callbacks[char_specifier] = callback
        if char_specifier == self._peripheral.measurement:
            index = self._peripheral.connections - 1
            script = self._peripheral.sessions[index] if index < len(self._peripheral.sessions) else []
            self._spawn(self._peripheral._play(self, script))

    async def write_gatt_char(self, char_specifier: str, data: bytes, response: bool | None = None) -> None:
        """Write; only the Record Access Control Point accepts writes."""
        await asyncio.sleep(0)
        if not self._connected:
            raise BleakError("Not connected")
        if char_specifier != RACP or not self._peripheral.racp:
            raise BleakCharacteristicNotFoundError(char_specifier)
        if RACP not in self._callbacks:
            raise BleakError("RACP write without indications enabled (ATT error 0xFD, CCCD improperly configured)")
        self._spawn(self._peripheral._racp(self, bytes(data)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _deliver(self, char: str, frame: bytes) -> None:
        callback = self._callbacks.get(char)
        if callback is not None:
            callback(Characteristic(char), bytearray(frame))

    def _lost(self) -> None:
        if not self._connected:
            return
        self._connected = False
        self._callbacks.clear()
        if self._on_disconnect is not None:
            self._on_disconnect(self)


class Air:
    """The radio neighbourhood: peripherals that advertise, and a scanner that finds them."""

    def __init__(self) -> None:
        self.peripherals: dict[str, Peripheral] = {}
        self.scans = 0

    def add(self, peripheral: Peripheral) -> Peripheral:
        """Put a device in range."""
        self.peripherals[peripheral.address.upper()] = peripheral
        return peripheral

    async def find(self, service_uuid: str, address: str | None, seconds: float) -> str | None:
        """Scanner API: the address of a matching advertising device, or None (no real waiting)."""
        await asyncio.sleep(0)
        self.scans += 1
        for p in self.peripherals.values():
            if not p.advertising:
                continue
            if address is not None and p.address.upper() == address.upper():
                return p.address
            if address is None and p.service == service_uuid:
                return p.address
        return None

    def client(self, device: str, disconnected_callback: Callable[[Any], None] | None = None) -> SimClient:
        """Client factory API: a client for the device the scanner returned."""
        return SimClient(self.peripherals[device.upper()], disconnected_callback)
