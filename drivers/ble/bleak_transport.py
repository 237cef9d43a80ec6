"""bleak at the boundary: :class:`BleakGattClient` and :class:`BleakScannerAdapter`.

Every ``BleakError`` (and OS-level or timeout failure from BlueZ/D-Bus) becomes a
:class:`~drivers.errors.TransportError` with ``raise ... from``, so the connection manager
handles one error type. bleak is imported lazily: ``mchub decode`` and the cloud do not
need it installed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from drivers.ble.transport import DisconnectedCallback, NotifyCallback
from drivers.errors import TransportError

T = TypeVar("T")


async def _guard(what: str, op: Awaitable[T]) -> T:
    from bleak.exc import BleakError

    try:
        return await op
    except BleakError as exc:
        raise TransportError(f"BLE {what} failed: {exc}") from exc
    except (TimeoutError, OSError) as exc:
        raise TransportError(f"BLE {what} failed: {exc!r}") from exc


class BleakGattClient:
    """:class:`~drivers.ble.transport.GattClient` over a ``bleak.BleakClient``."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def create(cls, device: Any, disconnected_callback: DisconnectedCallback, *, pair: bool = False,
               timeout: float = 20.0) -> BleakGattClient:
        """A client for ``device`` (a ``BLEDevice`` from the scanner, or an address); ``pair`` bonds first."""
        from bleak import BleakClient

        return cls(BleakClient(device, disconnected_callback=disconnected_callback, pair=pair, timeout=timeout))

    @property
    def is_connected(self) -> bool:
        """True while the link is up."""
        return bool(self._client.is_connected)

    async def connect(self) -> None:
        """Connect and discover services."""
        await _guard("connect", self._client.connect())

    async def disconnect(self) -> None:
        """Disconnect."""
        await _guard("disconnect", self._client.disconnect())

    async def start_notify(self, char_specifier: str, callback: NotifyCallback) -> None:
        """Subscribe to notifications/indications of one characteristic."""
        await _guard(f"subscribe to {char_specifier}", self._client.start_notify(char_specifier, callback))

    async def write_gatt_char(self, char_specifier: str, data: bytes, response: bool) -> None:
        """Write a characteristic value."""
        await _guard(f"write to {char_specifier}",
                     self._client.write_gatt_char(char_specifier, data, response=response))


def bleak_client_factory(pair: bool = False) -> Callable[[Any, DisconnectedCallback], BleakGattClient]:
    """The production :data:`~drivers.ble.transport.ClientFactory` (bonding first when ``pair``)."""

    def factory(device: Any, disconnected_callback: DisconnectedCallback) -> BleakGattClient:
        return BleakGattClient.create(device, disconnected_callback, pair=pair)

    return factory


class BleakScannerAdapter:
    """:class:`~drivers.ble.transport.Scanner` over ``bleak.BleakScanner``."""

    async def find(self, service_uuid: str, address: str | None, seconds: float) -> Any | None:
        """Scan until a matching advertisement is seen or ``seconds`` pass."""
        from bleak import BleakScanner

        wanted = address.lower() if address else None

        def match(device: Any, adv: Any) -> bool:
            if wanted is not None:
                return str(device.address).lower() == wanted
            return service_uuid in [u.lower() for u in adv.service_uuids]

        if wanted is None:
            scan = BleakScanner.find_device_by_filter(match, timeout=seconds, service_uuids=[service_uuid])
        else:
            scan = BleakScanner.find_device_by_filter(match, timeout=seconds)
        return await _guard("scan", scan)
