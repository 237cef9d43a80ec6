"""The Modbus station driver: poll the register block, emit each measurement once, acknowledge.

One poll cycle: read the block covering the map (one request), decode it, and when the
station flags a measurement that is new (by its sequence register), hand it to the hub
and wait until the hub has stored it durably; only then acknowledge it to the station
(``ack`` in the map). If the link drops between storing and acknowledging, the station
still shows the same sequence after the reconnect: the measurement is acknowledged again
but not emitted again. Without a sequence register that case emits a duplicate, so
configure one when the station has it.

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
from typing import Any

from drivers.backoff import Backoff
from drivers.base import Sink
from drivers.errors import ConfigError, FrameError, TransportError
from drivers.modbus.codec import Deduplicator, Frame, decode
from drivers.modbus.regmap import RegisterMap, get_choice, get_int, get_number, parse_register_map
from drivers.modbus.transport import RegisterLink, rtu_link, tcp_link

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
            return
        if self.dedup.is_new(frame):
            if frame.error is not None:
                log.warning("%s: measurement %s rejected: %s", self.device_id, frame.sequence, frame.error)
                sink.frame_error(frame.error)
            elif frame.measurement is not None:
                await sink.event(frame.measurement)
            self.dedup.done(frame)
        await self._ack(link, frame)

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


def _common(device_id: str, config: Mapping[str, Any]) -> tuple[RegisterMap, dict[str, Any]]:
    where = f"device {device_id!r}"
    regmap = parse_register_map(config, where)
    options = {
        "unit_id": get_int(config, "unit_id", where, 0, 247, 1),
        "timeout": get_number(config, "timeout", where, 1.0),
        "poll_interval": max(0.05, get_number(config, "poll_interval", where, 0.5)),
        "reconnect_max": get_number(config, "reconnect_max", where, 30.0),
    }
    return regmap, options


def modbus_tcp(device_id: str, config: Mapping[str, Any]) -> ModbusDriver:
    """``kind = "modbus-tcp"``: keys ``host``, ``port`` (502), ``unit_id`` (1), ``poll_interval``,
    ``timeout``, ``reconnect_max`` (seconds) and the register map (see :mod:`drivers.modbus.regmap`)."""
    regmap, o = _common(device_id, config)
    host = config.get("host")
    if not isinstance(host, str) or not host:
        raise parse_error(device_id, "host", "missing; fix: add host = \"<station IP address>\"")
    port = get_int(config, "port", f"device {device_id!r}", 1, 65535, 502)
    return ModbusDriver(device_id, regmap, lambda: tcp_link(host, port, o["unit_id"], o["timeout"]),
                        poll_interval=o["poll_interval"], backoff=Backoff(maximum=o["reconnect_max"]))


def modbus_rtu(device_id: str, config: Mapping[str, Any]) -> ModbusDriver:
    """``kind = "modbus-rtu"``: keys ``address`` (serial device path, as for every serial device;
    hub.toml's ``port`` is a TCP port number), ``baudrate`` (9600), ``parity`` (N/E/O),
    ``stopbits`` (1/2) and the keys of :func:`modbus_tcp` except host and port."""
    regmap, o = _common(device_id, config)
    where = f"device {device_id!r}"
    device = config.get("address") or config.get("port")  # a path in ``port`` works outside hub.toml
    if not isinstance(device, str) or not device:
        raise parse_error(device_id, "address",
                          "missing; fix: add address = \"/dev/ttyUSB0\" (the RS-485 adapter)")
    baudrate = get_int(config, "baudrate", where, 300, 921600, 9600)
    parity = get_choice(config, "parity", where, ("N", "E", "O"), "N")
    stopbits = get_int(config, "stopbits", where, 1, 2, 1)
    return ModbusDriver(
        device_id, regmap,
        lambda: rtu_link(device, o["unit_id"], o["timeout"], baudrate=baudrate, parity=parity, stopbits=stopbits),
        poll_interval=o["poll_interval"], backoff=Backoff(maximum=o["reconnect_max"]))


def parse_error(device_id: str, key: str, message: str) -> ConfigError:
    """A ConfigError for ``key`` of device ``device_id``."""
    return ConfigError(f"device {device_id!r}.{key}: {message}")
