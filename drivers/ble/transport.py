"""The small slice of bleak's API the connection manager uses, as typing Protocols.

:mod:`drivers.ble.bleak_transport` adapts bleak to it (and turns ``BleakError`` into
:class:`~drivers.errors.TransportError`); ``firmware_sim.ble`` implements the same API with
simulated peripherals, so tests inject it where BlueZ would be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

#: ``callback(sender, data)`` for a notification or indication (sender: bleak's characteristic)
NotifyCallback = Callable[[Any, bytearray], None]

#: ``callback(client)`` when the link drops, as in ``BleakClient(disconnected_callback=...)``
DisconnectedCallback = Callable[[Any], None]


class GattClient(Protocol):
    """A connection to one peripheral (subset of ``bleak.BleakClient``)."""

    @property
    def is_connected(self) -> bool:
        """True while the link is up."""
        ...

    async def connect(self) -> None:
        """Connect and discover services."""
        ...

    async def disconnect(self) -> None:
        """Disconnect (no error when already disconnected)."""
        ...

    async def start_notify(self, char_specifier: str, callback: NotifyCallback) -> None:
        """Write the CCCD and call ``callback`` for every notification/indication."""
        ...

    async def write_gatt_char(self, char_specifier: str, data: bytes, response: bool) -> None:
        """Write a characteristic value."""
        ...


#: builds a client for a device found by the scanner; ``device`` is whatever the scanner returned
ClientFactory = Callable[[Any, DisconnectedCallback], GattClient]


class Scanner(Protocol):
    """Finds the peripheral to connect to."""

    async def find(self, service_uuid: str, address: str | None, seconds: float) -> Any | None:
        """A device advertising ``service_uuid`` (or with ``address``, when given); None on timeout."""
        ...
