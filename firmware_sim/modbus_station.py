"""A simulated height/weight station's registers and handshake (docs/fieldbus.md §1).

Encoded from the document on its own — this module never imports a driver. The station
is transport-free: :mod:`firmware_sim.modbus` serves it over Modbus TCP (pymodbus server)
and :mod:`firmware_sim.modbus_rtu` over RTU on a pseudo-terminal.

A script is a list of steps run in order. :class:`Measure` and :class:`Garbage` publish a
measurement and wait until the hub acknowledges it; the fault steps apply to the next
request the hub sends: :class:`ExceptionReply`, :class:`Slow`, :class:`Drop`.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from dataclasses import dataclass, field

READY, SEQUENCE, ACK, HEIGHT, WEIGHT, BMI = 0, 1, 2, 3, 4, 6
#: registers the station answers for (0..15); beyond is "illegal data address" (exception 2)
SIZE = 16


@dataclass(frozen=True)
class Measure:
    """Publish a measurement (height in cm, weight in kg, BMI in kg/m2)."""

    height_cm: float
    weight_kg: float
    bmi: float


@dataclass(frozen=True)
class Garbage:
    """Publish a measurement whose weight register pair holds a NaN (a firmware fault)."""


@dataclass(frozen=True)
class ExceptionReply:
    """Answer the next ``count`` requests with Modbus exception ``code`` (6 = server busy)."""

    code: int = 6
    count: int = 1


@dataclass(frozen=True)
class Slow:
    """Delay the answer to the next request by ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Drop the connection at the next request (TCP: close it; RTU: stay silent)."""


Step = Measure | Garbage | ExceptionReply | Slow | Drop


def f32_words(value: float) -> list[int]:
    """IEEE 754 single precision as two registers, high word first."""
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo]


@dataclass
class Verdict:
    """What the transport must do with the current request."""

    exception: int | None = None
    drop: bool = False


@dataclass
class Station:
    """Register bank plus the publish/acknowledge handshake and scripted faults."""

    script: list[Step] = field(default_factory=list)
    sequence: int = 0
    registers: list[int] = field(default_factory=lambda: [0] * SIZE)
    published: list[int] = field(default_factory=list)  #: sequences published, in order
    acknowledged: list[int] = field(default_factory=list)  #: sequences the hub acknowledged
    requests: int = 0

    def __post_init__(self) -> None:
        self._steps: deque[Step] = deque(self.script)
        self._pending_exception = 0
        self._exception_code = 6
        self.done = asyncio.Event()  #: set when the script has run to its end
        self._advance()

    def add(self, *steps: Step) -> None:
        """Append steps to the script (e.g. from a test, while serving)."""
        self._steps.extend(steps)
        self.done.clear()
        if not self.registers[READY]:
            self._advance()

    def _publish(self, step: Measure | Garbage) -> None:
        self.sequence = (self.sequence + 1) & 0xFFFF
        regs = self.registers
        if isinstance(step, Measure):
            regs[HEIGHT] = round(step.height_cm * 10) & 0xFFFF
            regs[WEIGHT:WEIGHT + 2] = f32_words(step.weight_kg)
            regs[BMI] = round(step.bmi * 10) & 0xFFFF
        else:
            regs[HEIGHT] = 1700
            regs[WEIGHT:WEIGHT + 2] = [0x7FC0, 0x0000]  # quiet NaN
            regs[BMI] = 0xFFFF
        regs[SEQUENCE] = self.sequence
        regs[READY] = 1  # last, as the document says
        self.published.append(self.sequence)

    def _advance(self) -> None:
        """Run steps until one waits for the hub (a publication) or a fault is armed."""
        while self._steps and not self.registers[READY]:
            step = self._steps[0]
            if isinstance(step, Measure | Garbage):
                self._steps.popleft()
                self._publish(step)
                return
            return  # a fault step waits for the next request
        if not self._steps and not self.registers[READY]:
            self.done.set()

    async def before_request(self) -> Verdict:
        """Apply the fault at the head of the script, if any, to the request being served."""
        self.requests += 1
        if self._pending_exception:
            self._pending_exception -= 1
            return Verdict(exception=self._exception_code)
        while self._steps and isinstance(self._steps[0], ExceptionReply | Slow | Drop):
            step = self._steps.popleft()
            if isinstance(step, Slow):
                await asyncio.sleep(step.seconds)
                self._advance()
                continue
            self._advance()
            if isinstance(step, Drop):
                return Verdict(drop=True)
            self._exception_code, self._pending_exception = step.code, step.count - 1
            return Verdict(exception=step.code)
        return Verdict()

    def read(self, address: int, count: int) -> list[int] | int:
        """Registers ``address .. address+count`` or exception code 2."""
        if address < 0 or count < 1 or address + count > SIZE:
            return 2
        return self.registers[address:address + count]

    def write(self, address: int, values: list[int]) -> int | None:
        """Store written registers and run the handshake; exception code 2 outside the bank."""
        if address < 0 or not values or address + len(values) > SIZE:
            return 2
        was_ready = self.registers[READY]
        self.registers[address:address + len(values)] = [v & 0xFFFF for v in values]
        if not was_ready:
            return None
        acked = address <= ACK < address + len(values) and values[ACK - address] == self.sequence
        cleared = address <= READY < address + len(values) and values[READY - address] == 0  # "clear" mode
        if acked or cleared:
            self._acknowledge()
        else:
            self.registers[READY] = was_ready
        return None

    def _acknowledge(self) -> None:
        self.acknowledged.append(self.sequence)
        self.registers[READY] = 0
        self._advance()
