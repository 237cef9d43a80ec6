"""The simulated peripheral: bleak's client API, its Record Access Control Point, its faults."""

from __future__ import annotations

from typing import Any

import pytest
from bleak.exc import BleakError

from firmware_sim.ble.peripheral import RACP, Air, Disconnect, Indicate, Peripheral, uuid16

BP = uuid16(0x2A35)


async def connected(device: Peripheral) -> tuple[Any, list[tuple[str, bytes]], list[str]]:
    air = Air()
    air.add(device)
    got: list[tuple[str, bytes]] = []
    drops: list[str] = []
    address = await air.find(device.service, None, 1)
    assert address == device.address
    client = air.client(address, lambda c: drops.append("lost"))
    await client.connect()
    for char in sorted(device.characteristics()):
        await client.start_notify(char, lambda sender, data: got.append((sender.uuid, bytes(data))))
    return client, got, drops


async def settle() -> None:
    import asyncio

    for _ in range(50):
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("request_", "answer"),
    [(bytes([4, 1]), bytes([5, 0, 2, 0])),  # number of records: 2
     (bytes([1, 2]), bytes([6, 0, 1, 4])),  # operator "<=" not supported
     (bytes([1, 9]), bytes([6, 0, 1, 3])),  # invalid operator
     (bytes([9, 1]), bytes([6, 0, 9, 2])),  # op code not supported
     (bytes([3, 0]), bytes([6, 0, 3, 1]))],  # abort
)
async def test_racp_answers(request_: bytes, answer: bytes) -> None:
    client, got, _ = await connected(Peripheral("ble-bp", stored=[b"a", b"b"]))
    await client.write_gatt_char(RACP, request_, response=True)
    await settle()
    assert got == [(RACP, answer)]


async def test_racp_report_then_delete() -> None:
    device = Peripheral("ble-bp", stored=[b"a", b"b"])
    client, got, _ = await connected(device)
    await client.write_gatt_char(RACP, bytes([1, 1]), response=True)
    await settle()
    assert got == [(BP, b"a"), (BP, b"b"), (RACP, bytes([6, 0, 1, 1]))]
    await client.write_gatt_char(RACP, bytes([2, 1]), response=True)
    await client.write_gatt_char(RACP, bytes([1, 1]), response=True)
    await settle()
    assert got[3:] == [(RACP, bytes([6, 0, 2, 1])), (RACP, bytes([6, 0, 1, 6]))] and device.stored == []


async def test_script_and_disconnect() -> None:
    device = Peripheral("ble-bp", sessions=[[Indicate(b"live"), Indicate(b"junk", fault=True), Disconnect(),
                                             Indicate(b"never")]])
    client, got, drops = await connected(device)
    await settle()
    assert got == [(BP, b"live"), (BP, b"junk")] and drops == ["lost"] and not client.is_connected
    assert device.stored == [b"live"]  # a fault frame is sent, not remembered
    with pytest.raises(BleakError, match="Not connected"):
        await client.start_notify(BP, lambda s, d: None)


async def test_refused_connections_and_absent_device() -> None:
    air = Air()
    device = air.add(Peripheral("ble-weight", fail_connects=1, advertising=False))
    assert await air.find(device.service, None, 1) is None
    device.advertising = True
    client = air.client(device.address)
    with pytest.raises(BleakError, match="did not answer"):
        await client.connect()
    await client.connect()
    assert client.is_connected and device.connections == 1
