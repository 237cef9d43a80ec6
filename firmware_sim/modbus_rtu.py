"""The simulated station as a Modbus RTU slave on the master side of a pseudo-terminal.

pymodbus' serial server opens a device *path*; the master end of a pty has none, so the
RTU framing is written here from "MODBUS over Serial Line V1.02" §2.5 (frame = address,
function, data, CRC-16 low byte first) and the Application Protocol V1.1b3 (functions
03, 04, 06, 16; exception = function | 0x80 and a code). A frame with a bad CRC or for
another unit is ignored, as a real slave does; garbage is skipped byte by byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct

from firmware_sim.modbus_station import Station

log = logging.getLogger(__name__)


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF); ``crc16(b"\\x01\\x03\\x00\\x00\\x00\\x01") == 0x0A84``."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(body: bytes) -> bytes:
    """Append the CRC, low byte first."""
    return body + struct.pack("<H", crc16(body))


def request_length(buf: bytes) -> int | None:
    """Length of the request at the start of ``buf`` (None: need more bytes; 0: unknown function)."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in (3, 4, 6):
        return 8
    if fc == 16:
        return None if len(buf) < 7 else 9 + buf[6]
    return 0


class RtuSlave:
    """Answers RTU requests for ``unit_id`` on pty master ``fd`` from ``station``."""

    def __init__(self, station: Station, fd: int, unit_id: int = 1) -> None:
        self.station = station
        self.fd = fd
        self.unit_id = unit_id
        self.buffer = b""
        self.bad_crc = 0
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> RtuSlave:
        """Start serving (inside a running loop)."""
        os.set_blocking(self.fd, False)
        asyncio.get_running_loop().add_reader(self.fd, self._readable)
        self._task = asyncio.create_task(self._serve())
        return self

    async def stop(self) -> None:
        """Stop reading and answering."""
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.fd)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _readable(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the other side closed (EIO on a pty)
            return
        self.buffer += data
        while True:
            need = request_length(self.buffer)
            if need is None or len(self.buffer) < need:
                return
            if need == 0:  # unknown function: cannot know the length; resynchronise
                self.buffer = self.buffer[1:]
                continue
            candidate, rest = self.buffer[:need], self.buffer[need:]
            if crc16(candidate[:-2]) != struct.unpack("<H", candidate[-2:])[0]:
                self.bad_crc += 1
                self.buffer = self.buffer[1:]
                continue
            self.buffer = rest
            if candidate[0] == self.unit_id:
                self._queue.put_nowait(candidate[:-2])

    async def _serve(self) -> None:
        while True:
            request = await self._queue.get()
            answer = await self._answer(request)
            if answer is not None:
                with contextlib.suppress(OSError):
                    os.write(self.fd, frame(answer))

    async def _answer(self, req: bytes) -> bytes | None:
        unit, fc = req[0], req[1]
        verdict = await self.station.before_request()
        if verdict.drop:
            return None  # the station "reboots": silence
        if verdict.exception is not None:
            return bytes([unit, fc | 0x80, verdict.exception])
        if fc in (3, 4):
            address, count = struct.unpack(">HH", req[2:6])
            result = self.station.read(address, count)
            if isinstance(result, int):
                return bytes([unit, fc | 0x80, result])
            return bytes([unit, fc, 2 * len(result)]) + struct.pack(f">{len(result)}H", *result)
        if fc == 6:
            address, value = struct.unpack(">HH", req[2:6])
            error = self.station.write(address, [value])
            return bytes([unit, 0x86, error]) if error else req
        address, count = struct.unpack(">HH", req[2:6])
        values = list(struct.unpack(f">{req[6] // 2}H", req[7:7 + req[6] - req[6] % 2]))
        if len(values) != count:
            return bytes([unit, 0x90, 3])
        error = self.station.write(address, values)
        return bytes([unit, 0x90, error]) if error else req[:6]
