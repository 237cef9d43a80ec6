"""bleak errors become TransportError at the boundary (``raise ... from``)."""

from __future__ import annotations

from typing import Any

import pytest
from bleak.exc import BleakCharacteristicNotFoundError, BleakError

from drivers.ble.bleak_transport import BleakGattClient, BleakScannerAdapter
from drivers.errors import TransportError
from firmware_sim.ble.peripheral import Air, Peripheral


async def test_bleak_errors_are_wrapped() -> None:
    air = Air()
    air.add(Peripheral("ble-bp", fail_connects=1))
    client = BleakGattClient(air.client("C4:7C:8D:00:00:01"))
    with pytest.raises(TransportError, match="BLE connect failed") as err:
        await client.connect()
    assert isinstance(err.value.__cause__, BleakError)
    await client.connect()
    assert client.is_connected
    with pytest.raises(TransportError) as err:
        await client.start_notify("00002a9d-0000-1000-8000-00805f9b34fb", lambda _s, _d: None)
    assert isinstance(err.value.__cause__, BleakCharacteristicNotFoundError)
    await client.disconnect()
    assert not client.is_connected
    with pytest.raises(TransportError, match="write"):
        await client.write_gatt_char("00002a52-0000-1000-8000-00805f9b34fb", b"\x01\x01", True)


async def test_os_and_timeout_errors_are_wrapped() -> None:
    class Flaky:
        is_connected = False

        async def connect(self, **_kw: Any) -> None:
            raise TimeoutError

        async def disconnect(self) -> None:
            raise OSError(5, "Input/output error")

    client = BleakGattClient(Flaky())
    with pytest.raises(TransportError, match="connect failed: TimeoutError"):
        await client.connect()
    with pytest.raises(TransportError, match="Input/output"):
        await client.disconnect()


async def test_real_bleak_failures_surface_as_transport_errors() -> None:
    """The real BleakClient: on a host without BlueZ (CI) the D-Bus socket is missing; with
    BlueZ the made-up address is not found. Either way the manager sees a TransportError."""
    client = BleakGattClient.create("AA:BB:CC:DD:EE:FF", lambda _c: None, pair=True, timeout=1.0)
    assert not client.is_connected
    with pytest.raises(TransportError, match="BLE connect failed"):
        await client.connect()


async def test_real_bleak_scanner_finds_nothing_or_fails_cleanly() -> None:
    try:
        found = await BleakScannerAdapter().find("00001810-0000-1000-8000-00805f9b34fb", "AA:BB:CC:DD:EE:FF", 0.5)
    except TransportError as exc:
        assert isinstance(exc.__cause__, BleakError | OSError)
    else:
        assert found is None
