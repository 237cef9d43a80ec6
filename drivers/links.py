"""Byte links to serial devices: a local serial port (pyserial) or a TCP serial server.

Thin adapters with one small interface, :class:`Link`, so a driver never cares whether
its station hangs off ``/dev/ttyUSB0`` or a serial-to-Ethernet converter::

    link = await open_link(link_spec("st-1", {"address": "/dev/ttyUSB0"}), baudrate=9600)
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
from typing import Annotated, Any, Literal, Protocol

import msgspec
from msgspec import Meta

from drivers.errors import TransportError
from drivers.options import device_options, option_error


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


class LinkOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Where a serial device is, from its device table: ``address`` is the serial port, or with
    ``transport = "tcp"`` the host of a TCP serial server listening on ``port``."""

    address: Annotated[str, Meta(min_length=1, examples=["/dev/ttyUSB0"], description=(
        'add address = "/dev/ttyUSB0" (the serial port; with transport = "tcp" the serial server\'s host)'))]
    transport: Literal["serial", "tcp"] = "serial"
    #: the TCP port of a serial server (``transport = "tcp"``; ignored for a serial port)
    port: Annotated[int, Meta(ge=1, le=65535, description=(
        'write port = 4001 (the TCP port of a serial server); a serial port goes in address'))] | None = None

    def __str__(self) -> str:
        return f"tcp://{self.address}:{self.port}" if self.transport == "tcp" else self.address


def link_spec(device_id: str, config: Mapping[str, Any]) -> LinkOptions:
    """Where a device is (:class:`LinkOptions`), decoded from its configuration table::

        address = "/dev/serial/by-id/usb-FTDI_..."              # a serial port (transport = "serial")
        transport = "tcp", address = "10.0.0.7", port = 4001   # a TCP serial server
    """
    link = device_options(device_id, config, LinkOptions)
    if link.transport == "tcp" and link.port is None:
        raise option_error(device_id, "port", "missing (a TCP serial server needs its port)", "add port = 4001")
    if link.transport == "serial" and link.address.startswith("tcp://"):
        raise option_error(device_id, "address", f"{link.address!r} is not a serial port",
                           'for a TCP serial server write transport = "tcp", address = "HOST", port = PORT')
    return link


async def open_link(where: LinkOptions, baudrate: int) -> Link:
    """Open the serial port, or connect to the TCP serial server, ``where`` names."""
    if where.transport == "tcp" and where.port is not None:
        return await TcpLink.connect(where.address, where.port)
    return SerialLink(where.address, baudrate)
