"""The simulated Modbus height/weight station served over TCP by a real pymodbus server.

>>> async def demo():                                  # doctest: +SKIP
...     station = Station([Measure(165.5, 66.4, 24.4)])
...     async with ModbusTcpStation(station, port=5020):
...         await station.done.wait()                  # until the hub acknowledged it

The pymodbus register store is only a mirror: every request first goes through the
:class:`~firmware_sim.modbus_station.Station` (faults, handshake), which then refreshes
the store the server answers from. RTU over a pseudo-terminal is in
:mod:`firmware_sim.modbus_rtu`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from firmware_sim.modbus_station import SIZE, Station

log = logging.getLogger(__name__)


class ModbusTcpStation:
    """Serve ``station`` as unit ``unit_id`` on ``host:port`` (port 0 is not supported by pymodbus)."""

    def __init__(self, station: Station, port: int, host: str = "127.0.0.1", unit_id: int = 1) -> None:
        self.station = station
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.server: ModbusTcpServer | None = None
        self.drops = 0

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      current_registers: list[int], set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        if function_code in (6, 16) and set_values is None:
            # pymodbus reads the written registers back to build the echo: not a new request
            current_registers[0:SIZE] = self.station.registers
            return None
        verdict = await self.station.before_request()
        if verdict.drop:
            self.drop_connections()
            return ExcCodes.DEVICE_FAILURE  # never sent: the connection is gone
        if verdict.exception is not None:
            return ExcCodes(verdict.exception)
        if set_values is not None and function_code in (6, 16):
            error = self.station.write(address, [int(v) for v in set_values])
        else:
            result = self.station.read(address, count)
            error = result if isinstance(result, int) else None
        current_registers[0:SIZE] = self.station.registers  # the store mirrors the station
        return None if error is None else ExcCodes(error)

    def drop_connections(self) -> None:
        """Close every client connection (the station's network cable is pulled and plugged back)."""
        if self.server is None:
            return
        for conn in list(self.server.active_connections.values()):
            with contextlib.suppress(Exception):
                conn.close()
        self.drops += 1
        log.info("modbus sim: dropped connections")

    async def start(self) -> ModbusTcpStation:
        """Listen; returns self."""
        device = SimDevice(id=self.unit_id, simdata=[SimData(address=0, count=SIZE, values=0,
                                                             datatype=DataType.REGISTERS)],
                           action=self._action)
        self.server = ModbusTcpServer(device, address=(self.host, self.port))
        await self.server.serve_forever(background=True)
        log.info("modbus sim: height/weight station on %s:%d unit %d", self.host, self.port, self.unit_id)
        return self

    async def stop(self) -> None:
        """Stop listening and close connections."""
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    async def __aenter__(self) -> ModbusTcpStation:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()


async def serve_forever(station: Station, port: int, host: str = "127.0.0.1", unit_id: int = 1) -> None:
    """Serve until cancelled."""
    async with ModbusTcpStation(station, port, host, unit_id):
        await asyncio.Event().wait()
