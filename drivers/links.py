"""Byte links to serial devices: a local serial port (pyserial) or a TCP serial server.

Thin adapters with one small interface, :class:`Link`, so a driver never cares whether
its station hangs off ``/dev/ttyUSB0`` or a serial-to-Ethernet converter::

    link = open_link("/dev/ttyUSB0", baudrate=9600)   # or "tcp://10.0.0.7:4001"
    await link.write(b"...")
    data = await link.read(0.2)   # b"" when nothing arrived in time

The serial port is opened non-blocking and exclusively (a second program opening the
same adapter gets a clear error instead of stealing half the bytes) and watched with
``loop.add_reader``, so no thread is needed. Any failure of the link (port vanished, EIO after a USB adapter was
pulled, TCP reset) is raised as :class:`~drivers.errors.TransportError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from typing import Any, Protocol

from drivers.errors import ConfigError, TransportError


class Link(Protocol):
    """A connected byte stream to one device."""

    description: str

    async def read(self, wait: float) -> bytes:
        """Bytes that arrived, waiting at most ``wait`` s; ``b""`` when none did."""
        ...

    async def write(self, data: bytes) -> None:
        """Send ``data`` completely."""
        ...

    def close(self) -> None:
        """Release the port or socket (idempotent)."""
        ...


class SerialLink:
    """A local serial port (also a pseudo-terminal) read via the event loop."""

    def __init__(self, path: str, baudrate: int = 9600) -> None:
        import serial  # pyserial, an ``edge`` dependency

        self.description = f"{path} @ {baudrate} 8N1"
        try:
            self._port = serial.Serial(path, baudrate=baudrate, timeout=0, write_timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportError(f"cannot open serial port {path}: {exc}") from exc
        self._fd: int = self._port.fileno()
        self._closed = False

    async def read(self, wait: float) -> bytes:
        """Wait until the port is readable (or ``wait`` s), then read what is there."""
        if self._closed:
            raise TransportError(f"{self.description}: link closed")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self._fd, wake)
        try:  # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that meets a ready port
            async with asyncio.timeout(wait):
                await ready
        except TimeoutError:
            return b""
        finally:
            loop.remove_reader(self._fd)
        try:
            data = os.read(self._fd, 4096)
        except BlockingIOError:
            return b""
        except OSError as exc:  # EIO: the other end of the line went away
            raise TransportError(f"{self.description}: read failed: {exc}") from exc
        if not data:
            raise TransportError(f"{self.description}: device disconnected")
        return data

    async def write(self, data: bytes) -> None:
        """Write all of ``data``, waiting for the port to drain when its buffer is full."""
        view = memoryview(data)
        while view:
            try:
                n = os.write(self._fd, view)
            except BlockingIOError:
                await asyncio.sleep(0.005)
                continue
            except OSError as exc:
                raise TransportError(f"{self.description}: write failed: {exc}") from exc
            view = view[n:]

    def close(self) -> None:
        """Close the port."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._port.close()


class TcpLink:
    """A serial device behind a TCP serial server (raw socket, no RFC 2217)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, description: str) -> None:
        self.description = description
        self._reader = reader
        self._writer = writer

    @classmethod
    async def connect(cls, host: str, port: int) -> TcpLink:
        """Connect to ``host:port``."""
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError as exc:
            raise TransportError(f"cannot connect to tcp://{host}:{port}: {exc}") from exc
        return cls(reader, writer, f"tcp://{host}:{port}")

    async def read(self, wait: float) -> bytes:
        """Bytes received within ``wait`` s."""
        try:  # asyncio.timeout: a cancel is never swallowed (see SerialLink.read)
            async with asyncio.timeout(wait):
                data = await self._reader.read(4096)
        except TimeoutError:
            return b""
        except OSError as exc:
            raise TransportError(f"{self.description}: {exc}") from exc
        if not data:
            raise TransportError(f"{self.description}: connection closed by the device")
        return data

    async def write(self, data: bytes) -> None:
        """Send ``data``."""
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            raise TransportError(f"{self.description}: {exc}") from exc

    def close(self) -> None:
        """Close the socket."""
        self._writer.close()


def link_spec(device_id: str, config: Mapping[str, Any]) -> str:
    """Where a device is, from its configuration table, as a path or ``tcp://host:port``.

    Accepted forms (the first is the hub.toml convention)::

        address = "/dev/serial/by-id/usb-FTDI_..."              # transport = "serial" (default)
        transport = "tcp", address = "10.0.0.7", port = 4001   # a TCP serial server
        port = "/dev/ttyUSB0"   or   port = "tcp://10.0.0.7:4001"
    """
    transport = config.get("transport") or "serial"
    address, port = config.get("address"), config.get("port")
    if transport not in ("serial", "tcp"):
        raise ConfigError(f"device {device_id!r}: transport must be \"serial\" or \"tcp\" (got {transport!r})")
    if transport == "tcp":
        if isinstance(port, str) and port.startswith("tcp://"):
            return port
        if not isinstance(address, str) or not address or isinstance(port, bool) or not isinstance(port, int):
            raise ConfigError(f"device {device_id!r}: a TCP serial server needs address = \"10.0.0.7\" and "
                              "port = 4001")
        return f"tcp://{address}:{port}"
    for value in (address, port):
        if isinstance(value, str) and value:
            return value
    raise ConfigError(f"device {device_id!r}: set address to the serial port, "
                      "e.g. address = \"/dev/ttyUSB0\" (or transport = \"tcp\" with address and port)")


async def open_link(port: str, baudrate: int) -> Link:
    """Open ``port``: a device path, or ``tcp://host:port`` for a serial server."""
    if port.startswith("tcp://"):
        host, _, num = port[len("tcp://"):].rpartition(":")
        if not host or not num.isdigit():
            raise ConfigError(f"port {port!r}: write tcp://HOST:PORT, e.g. tcp://127.0.0.1:7001")
        return await TcpLink.connect(host, int(num))
    return SerialLink(port, baudrate)
