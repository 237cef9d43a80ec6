"""Run a simulated serial device on a pseudo-terminal or a TCP port, with faults.

A device simulator is a plain state machine (:class:`SerialDevice`): it gets the host's
bytes and the clock, and returns :class:`~firmware_sim.faults.SimFrame` values to send.
:func:`serve` moves bytes between it and an endpoint and applies the byte-level faults.

The pty endpoint can publish a stable symlink (``--link /tmp/mchub-station``), like udev's
``/dev/serial/by-id`` names: after a simulated disconnect it creates a new pty and moves
the link, so a hub configured with the link path reconnects like to a replugged adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pty
import time
import tty
from typing import Protocol

from firmware_sim.faults import FaultPlan, SimFrame, noise

log = logging.getLogger("mchub.sim")


class SerialDevice(Protocol):
    """A simulated device: answers host bytes, pushes frames on its own clock."""

    def receive(self, data: bytes, now: float) -> list[SimFrame]:
        """Frames to send in answer to ``data`` from the host."""
        ...

    def tick(self, now: float) -> list[SimFrame]:
        """Frames the device sends by itself (push mode)."""
        ...


class Endpoint(Protocol):
    """Where the hub connects."""

    device: str

    async def read(self, wait: float) -> bytes:
        """Bytes from the hub (``b""`` if none within ``wait`` s)."""
        ...

    async def write(self, data: bytes) -> None:
        """Bytes to the hub (dropped when no hub is connected)."""
        ...

    async def reconnect(self) -> None:
        """Drop the link and offer a new one."""
        ...

    def close(self) -> None:
        """Stop serving."""
        ...


class PtyEndpoint:
    """A pseudo-terminal; ``device`` is the path to put in hub.toml (the link, if given)."""

    def __init__(self, link: str | None = None) -> None:
        self.link = link
        self._open()

    def _open(self) -> None:
        self.master, self._slave = pty.openpty()
        tty.setraw(self.master)
        tty.setraw(self._slave)  # keep a slave fd: the master never sees EIO between hub connections
        os.set_blocking(self.master, False)
        self.pts = os.ttyname(self._slave)
        if self.link:
            tmp = f"{self.link}.{os.getpid()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            os.symlink(self.pts, tmp)
            os.replace(tmp, self.link)
        self.device = self.link or self.pts

    async def read(self, wait: float) -> bytes:
        """Bytes written by the hub."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(self.master, wake)
        try:  # asyncio.timeout: on Python 3.11 wait_for can swallow a cancel that meets a ready pty
            async with asyncio.timeout(wait):
                await ready
        except TimeoutError:
            return b""
        finally:
            loop.remove_reader(self.master)
        try:
            return os.read(self.master, 4096)
        except (BlockingIOError, OSError):
            return b""

    async def write(self, data: bytes) -> None:
        """Write everything; like a UART nobody listens to, drop bytes the pty cannot take within 1 s."""
        view = memoryview(data)
        waited = 0.0
        while view:
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                if waited >= 1.0:
                    log.debug("pty buffer full: %d bytes dropped", len(view))
                    return
                await asyncio.sleep(0.005)
                waited += 0.005
            except OSError:
                return  # closed by a reconnect meanwhile

    async def reconnect(self) -> None:
        """Hang up: close this pty (the hub's reads fail) and open a new one."""
        self.close()
        await asyncio.sleep(0.05)
        self._open()
        if not self.link:
            log.warning("simulated disconnect: the device is now %s (use --link for a stable path)", self.pts)

    def close(self) -> None:
        """Close both ends."""
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class TcpEndpoint:
    """A TCP serial server; one hub connection at a time."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host, self.port = host, port
        self.device = ""
        self._server: asyncio.Server | None = None
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> TcpEndpoint:
        """Listen; ``device`` becomes ``tcp://host:port``."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.device = f"tcp://{self.host}:{self.port}"
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._conn is not None:
            self._conn[1].close()
        self._conn = (reader, writer)
        self._connected.set()

    async def read(self, wait: float) -> bytes:
        """Bytes from the connected hub."""
        if self._conn is None:
            await asyncio.sleep(wait)
            return b""
        try:
            data = await asyncio.wait_for(self._conn[0].read(4096), wait)
        except TimeoutError:
            return b""
        except OSError:
            data = b""
        if not data:
            self._drop()
        return data

    async def write(self, data: bytes) -> None:
        """Send to the hub, if one is connected."""
        if self._conn is None:
            return
        try:
            self._conn[1].write(data)
            await self._conn[1].drain()
        except OSError:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None
            self._connected.clear()

    async def reconnect(self) -> None:
        """Close the hub's connection; it may connect again."""
        self._drop()

    def close(self) -> None:
        """Stop listening."""
        self._drop()
        if self._server is not None:
            self._server.close()


async def send(endpoint: Endpoint, frame: SimFrame, plan: FaultPlan, pause: float = 0.5,
               avoid: bytes = b"") -> bool:
    """Send one frame, applying its byte-level fault; False when the link was dropped."""
    if frame.on_sent is not None:
        frame.on_sent()
    data, rng = frame.data, plan.rng
    if frame.fault == "garbage":
        await endpoint.write(noise(rng, frame.line, avoid))
    elif frame.fault == "bad_checksum" and frame.corrupt is not None:
        data = frame.corrupt(data)
    elif frame.fault in ("truncate", "disconnect"):
        cut = rng.randint(1, max(1, len(data) - 2))
        await endpoint.write(data[:cut])
        if frame.fault == "disconnect":
            await asyncio.sleep(0.05)
            await endpoint.reconnect()
            await asyncio.sleep(pause)  # like a replugged adapter: the hub needs a moment to re-open
            return False
        await asyncio.sleep(pause)
        return True
    elif frame.fault == "slow":
        await asyncio.sleep(rng.uniform(0.05, 0.2))
        step = max(7, len(data) // 20)
        for i in range(0, len(data), step):
            await endpoint.write(data[i:i + step])
            await asyncio.sleep(0.01)
        return True
    await endpoint.write(data)
    return True


async def serve(device: SerialDevice, endpoint: Endpoint, plan: FaultPlan, stop: asyncio.Event,
                pause: float = 0.5, avoid: bytes = b"") -> None:
    """Run ``device`` on ``endpoint`` until ``stop`` is set.

    ``pause`` is the silence after a truncated frame (longer than the hub's idle flush);
    ``avoid`` lists bytes noise must not contain (the protocol's preamble start).
    """
    while not stop.is_set():
        data = await endpoint.read(0.01)
        now = time.monotonic()
        frames = device.receive(data, now) if data else []
        frames += device.tick(now)
        for frame in frames:
            if not await send(endpoint, frame, plan, pause, avoid):
                break  # the link dropped: answers to requests queued before it are lost
