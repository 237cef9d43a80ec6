"""The Modbus station driver: poll the register block, emit each measurement once, acknowledge.

One poll cycle: read the block covering the map (one request), decode it, and when the
station flags a measurement that is new (by its sequence register), hand it to the hub
and wait until the hub has stored it durably; only then acknowledge it to the station
(``ack`` in the map). If the link drops between storing and acknowledging, the station
still shows the same sequence after the reconnect: the measurement is acknowledged again
but not emitted again. Without a sequence register the driver emits it again, marked
``repeats``, and the hub recognises it by its values (below); a new measurement with the
very same values would be taken for it, so configure a sequence when the station has one.

Across hub restarts and config reloads (a new driver object, an empty memory) the
driver marks a measurement it cannot place as ``repeats`` — one seen before the station
showed "not ready" since this object was made, or one stored but not yet acknowledged —
with the sequence value as its ``identity``; the hub then compares it with the last
reading it stored from this station (``edge.store.repeats``), so a register still on
show, or a crash between storing and acknowledging, never stores it twice.

A run of identical bad responses (a station answering "busy" for minutes) is reported
once and counted in the log, so the hub does not store one copy per poll.

The driver reconnects by itself with exponential backoff and reports the link state to
the sink; it raises :class:`~drivers.errors.TransportError` only after ``max_failures``
consecutive failed connections (default: never).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from drivers.base import Sink
from drivers.errors import FrameError, TransportError
from drivers.modbus.codec import Deduplicator, Frame, decode
from drivers.modbus.regmap import RegisterMap, parse_register_map
from drivers.modbus.transport import RegisterLink, rtu_link, tcp_link
from drivers.options import device_options, option_error
from protocol.backoff import Backoff

log = logging.getLogger(__name__)


class ModbusDriver:
    """Polls one Modbus station through a :class:`RegisterLink` made fresh for every connection."""

    def __init__(self, device_id: str, regmap: RegisterMap, link_factory: Callable[[], RegisterLink], *,
                 poll_interval: float = 0.5, backoff: Backoff | None = None, max_failures: int | None = None) -> None:
        self.device_id = device_id
        self.regmap = regmap
        self.link_factory = link_factory
        self.poll_interval = poll_interval
        self.backoff = backoff or Backoff()
        self.max_failures = max_failures
        self.dedup = Deduplicator()  #: survives reconnects and restarts of run()
        #: a ready measurement may be one the hub already stored: nothing seen since this object was
        #: made, or the last one was stored but its acknowledgement not yet confirmed
        self.uncertain = True

    async def run(self, sink: Sink) -> None:
        """Connect, poll until the link fails, reconnect with backoff; forever (until cancelled)."""
        failures = 0
        while True:
            link = self.link_factory()
            try:
                await link.connect()
                log.info("%s: connected (%s)", self.device_id, link.description)
                sink.state(True, link.description)
                self.backoff.reset()
                failures = 0
                await self._poll(link, sink)
            except TransportError as exc:
                failures += 1
                log.warning("%s: link lost: %s", self.device_id, exc)
                sink.state(False, str(exc))
                if self.max_failures is not None and failures >= self.max_failures:
                    raise
            finally:
                link.close()
            await asyncio.sleep(self.backoff.next())

    async def _poll(self, link: RegisterLink, sink: Sink) -> None:
        m = self.regmap
        repeats = 0  # identical bad responses in a row after the reported one
        last: FrameError | None = None
        while True:
            try:
                frame = decode(m, await link.read(m.table, m.start, m.count))
                await self._handle(link, sink, frame)
            except FrameError as exc:  # exception response (to the read or the ack), short or long block
                if last is not None and _same(exc, last):
                    repeats += 1  # a station answering "busy" for minutes is reported once, not per poll
                else:
                    log.warning("%s: bad response: %s", self.device_id, exc)
                    sink.frame_error(exc)
                    last, repeats = exc, 0
            else:
                if repeats:
                    log.warning("%s: the last bad response repeated %d more times", self.device_id, repeats)
                last, repeats = None, 0
            await asyncio.sleep(self.poll_interval)

    async def _handle(self, link: RegisterLink, sink: Sink, frame: Frame) -> None:
        if not frame.ready:
            self.uncertain = False  # nothing on show: whatever shows next is new
            return
        if self.dedup.is_new(frame):
            if frame.error is not None:
                log.warning("%s: measurement %s rejected: %s", self.device_id, frame.sequence, frame.error)
                sink.frame_error(frame.error)
            elif frame.measurement is not None:
                identity = "" if frame.sequence is None else f"seq={frame.sequence}"
                await sink.event(msgspec.structs.replace(frame.measurement, repeats=self.uncertain,
                                                         identity=identity))
                self.uncertain = True  # stored; until acknowledged, showing it again is the same reading
            self.dedup.done(frame)
        await self._ack(link, frame)
        if self.regmap.ack != "none":
            self.uncertain = False  # acknowledged: the station shows the next measurement only

    async def _ack(self, link: RegisterLink, frame: Frame) -> None:
        m = self.regmap
        if m.ack == "none":
            return
        if m.ack == "clear":
            await link.write(m.ack_address, [0] * m.ready.width)
            return
        assert m.sequence is not None and frame.sequence is not None  # parse_register_map guarantees it
        if m.sequence.width == 1:
            await link.write(m.ack_address, [frame.sequence])
            return
        hi, lo = struct.unpack(">HH", struct.pack(">I", frame.sequence))
        await link.write(m.ack_address, [hi, lo] if m.sequence.word_order == "big" else [lo, hi])


def _same(a: FrameError, b: FrameError) -> bool:
    return type(a) is type(b) and a.raw == b.raw and str(a) == str(b)


_SECONDS = Meta(gt=0, le=3600)


class ModbusOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The connection keys of a Modbus station's table, each declared once (the register map's
    keys, in the same table, are :class:`~drivers.modbus.regmap.RegisterMap`'s)."""

    unit_id: Annotated[int, Meta(ge=0, le=247, examples=[1])] = 1
    timeout: Annotated[float, _SECONDS, Meta(examples=[1.0])] = 1.0  #: seconds per request
    #: seconds between polls (at least 0.05: a faster poll is slowed to that)
    poll_interval: Annotated[float, _SECONDS, Meta(examples=[0.5])] = 0.5
    reconnect_max: Annotated[float, _SECONDS, Meta(examples=[30.0])] = 30.0  #: cap of the reconnect backoff


class ModbusTcpOptions(ModbusOptions, frozen=True, kw_only=True):
    """``kind = "modbus-tcp"``."""

    host: Annotated[str, Meta(min_length=1, examples=["10.0.0.5"], description='add host = "<station IP address>"')]
    port: Annotated[int, Meta(ge=1, le=65535, examples=[502])] = 502


class ModbusRtuOptions(ModbusOptions, frozen=True, kw_only=True):
    """``kind = "modbus-rtu"``; ``port``, when set, is the unit id (the cloud inventory's form)."""

    address: Annotated[str, Meta(min_length=1, examples=["/dev/ttyUSB0"], description=(
        'add address = "/dev/ttyUSB0" (the RS-485 adapter)'))]
    port: Annotated[int, Meta(ge=0, le=247, description=(
        "remove it, write the serial path as address and the unit id as unit_id"))] | None = None
    baudrate: Annotated[int, Meta(ge=300, le=921600, examples=[9600])] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Annotated[int, Meta(ge=1, le=2, examples=[1])] = 1


def modbus_tcp(device_id: str, config: Mapping[str, Any]) -> ModbusDriver:
    """``kind = "modbus-tcp"``: the keys of :class:`ModbusTcpOptions` and the register map
    (see :mod:`drivers.modbus.regmap`)."""
    o = device_options(device_id, config, ModbusTcpOptions)
    regmap = parse_register_map(config, device_id)
    return ModbusDriver(device_id, regmap, lambda: tcp_link(o.host, o.port, o.unit_id, o.timeout),
                        poll_interval=max(0.05, o.poll_interval), backoff=Backoff(maximum=o.reconnect_max))


def modbus_rtu(device_id: str, config: Mapping[str, Any]) -> ModbusDriver:
    """``kind = "modbus-rtu"``: the keys of :class:`ModbusRtuOptions` (``address`` is the serial
    device path, like every serial driver) and the register map. A device pushed from the
    cloud's inventory carries the unit id as an integer ``port`` (provisioning/inventory.py);
    that is read as ``unit_id``."""
    o = device_options(device_id, config, ModbusRtuOptions)
    if o.port is not None:
        if "unit_id" in config and o.unit_id != o.port:
            raise option_error(device_id, "port", f"{o.port} differs from unit_id {o.unit_id!r}", "keep only unit_id")
        o = msgspec.structs.replace(o, unit_id=o.port)
    regmap = parse_register_map(config, device_id)
    return ModbusDriver(
        device_id, regmap,
        lambda: rtu_link(o.address, o.unit_id, o.timeout, baudrate=o.baudrate, parity=o.parity, stopbits=o.stopbits),
        poll_interval=max(0.05, o.poll_interval), backoff=Backoff(maximum=o.reconnect_max))
