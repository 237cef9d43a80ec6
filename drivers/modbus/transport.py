"""Thin, swappable Modbus links: read a register block, write registers, reconnect.

:class:`RegisterLink` is all the driver needs; :class:`PymodbusLink` implements it over a
pymodbus async client (TCP or RTU over serial). Every pymodbus or OS error is wrapped at
this boundary: a dead link becomes :class:`~drivers.errors.TransportError`, an exception
response from the station becomes :class:`ExceptionResponse` (a frame error: reported,
the link stays up).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from drivers.errors import FrameError, TransportError

#: Modbus exception codes (Modbus Application Protocol V1.1b3 §7)
EXCEPTION_NAMES = {
    1: "illegal function", 2: "illegal data address", 3: "illegal data value", 4: "server device failure",
    5: "acknowledge", 6: "server device busy", 8: "memory parity error", 10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class ExceptionResponse(FrameError):
    """The station answered a request with a Modbus exception response (``code``)."""

    reason = "modbus_exception"

    def __init__(self, message: str, code: int, raw: bytes = b"") -> None:
        super().__init__(message, raw)
        self.code = code


class RegisterLink(Protocol):
    """What the driver needs from a Modbus connection."""

    description: str  #: e.g. "tcp 10.0.0.5:502 unit 1", shown on the status page

    async def connect(self) -> None:
        """Open the link; raise TransportError when it cannot."""
        ...

    async def read(self, table: str, address: int, count: int) -> list[int]:
        """Read ``count`` holding or input registers from ``address``."""
        ...

    async def write(self, address: int, values: list[int]) -> None:
        """Write holding registers from ``address``."""
        ...

    def close(self) -> None:
        """Close the link (idempotent)."""
        ...


class PymodbusLink:
    """A :class:`RegisterLink` over a pymodbus ``AsyncModbusTcpClient``/``AsyncModbusSerialClient``.

    The client's own reconnect is switched off (``reconnect_delay=0``): the driver decides
    when to reconnect, with its own backoff, so it can report the link state.
    """

    def __init__(self, client: Any, unit_id: int, description: str) -> None:
        self.client = client
        self.unit_id = unit_id
        self.description = description

    async def connect(self) -> None:
        """Connect the pymodbus client."""
        try:
            ok = await self.client.connect()
        except (TimeoutError, OSError) as exc:  # pyserial's SerialException is an OSError
            raise TransportError(f"{self.description}: cannot connect: {exc}") from exc
        if not ok:
            raise TransportError(f"{self.description}: cannot connect")
        serial_port = getattr(getattr(self.client.ctx, "transport", None), "sync_serial", None)
        if serial_port is not None:  # RTU: drop answers that arrived late for the previous connection
            serial_port.reset_input_buffer()

    async def _call(self, what: str, call: Any, function_code: int) -> Any:
        from pymodbus.exceptions import ModbusException

        try:
            response = await call
        except (TimeoutError, ModbusException, OSError) as exc:
            raise TransportError(f"{self.description}: {what} failed: {exc}") from exc
        finally:
            _reraise_lost_cancel()
        if response.isError():
            code = int(getattr(response, "exception_code", 0))
            fc = int(getattr(response, "function_code", 0))
            name = EXCEPTION_NAMES.get(code, "unknown exception")
            raise ExceptionResponse(f"{self.description}: {what}: station answered exception {code} ({name})",
                                    code, bytes([fc & 0xFF, code & 0xFF]))
        if int(getattr(response, "function_code", function_code)) != function_code:
            # RTU has no transaction id: a late answer to an earlier request means the link is out of step
            raise TransportError(f"{self.description}: {what}: answer to function "
                                 f"{response.function_code}, not {function_code}; resynchronising")
        return response

    async def read(self, table: str, address: int, count: int) -> list[int]:
        """Read registers (function 03 for ``holding``, 04 for ``input``)."""
        method = self.client.read_input_registers if table == "input" else self.client.read_holding_registers
        response = await self._call(f"read {count} {table} registers at {address}",
                                    method(address, count=count, device_id=self.unit_id), 4 if table == "input" else 3)
        registers = [int(r) for r in response.registers]
        return registers

    async def write(self, address: int, values: list[int]) -> None:
        """Write one register (function 06) or several (function 16)."""
        if len(values) == 1:
            await self._call(f"write register {address}",
                             self.client.write_register(address, values[0], device_id=self.unit_id), 6)
        else:
            await self._call(f"write registers {address}..{address + len(values) - 1}",
                             self.client.write_registers(address, values, device_id=self.unit_id), 16)

    def close(self) -> None:
        """Close the client."""
        self.client.close()


def _reraise_lost_cancel() -> None:
    """Python 3.11's ``asyncio.wait_for`` (used inside pymodbus) swallows a cancellation that
    races with the response; the task is then still marked as cancelling. Honour it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def tcp_link(host: str, port: int, unit_id: int, timeout: float) -> PymodbusLink:
    """A Modbus TCP link (must be created inside a running event loop)."""
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient(host, port=port, timeout=timeout, retries=0, reconnect_delay=0)
    return PymodbusLink(client, unit_id, f"modbus tcp {host}:{port} unit {unit_id}")


def rtu_link(device: str, unit_id: int, timeout: float, baudrate: int = 9600, parity: str = "N",
             bytesize: int = 8, stopbits: int = 1) -> PymodbusLink:
    """A Modbus RTU link over a serial port (must be created inside a running event loop)."""
    from pymodbus.client import AsyncModbusSerialClient

    client = AsyncModbusSerialClient(device, baudrate=baudrate, parity=parity, bytesize=bytesize,
                                     stopbits=stopbits, timeout=timeout, retries=0, reconnect_delay=0)
    return PymodbusLink(client, unit_id, f"modbus rtu {device} unit {unit_id}")
