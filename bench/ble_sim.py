"""Hub plugin for the soak: the four shipped BLE driver kinds against streaming simulated devices.

``[hub] plugins = ["bench.ble_sim"]``, then ``driver = "soak-ble-bp"`` (or
``soak-ble-thermometer``, ``soak-ble-weight``, ``soak-ble-body-composition``) with
``interval = SECONDS``. The hub runs the real :class:`drivers.ble.manager.BleDriver` with
the real bleak adapter and the shipped codecs; the bleak client is a
:mod:`firmware_sim.ble` peripheral in the hub's own process (BlueZ is not needed) that
indicates one measurement every ``interval`` seconds for as long as it is connected.
Unlike the test peripheral it keeps nothing of what it sent, so the hub's memory is the
hub's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Callable, Mapping
from typing import Any

from drivers.ble.bleak_transport import BleakGattClient
from drivers.ble.config import BleConfig
from drivers.ble.manager import BleDriver
from drivers.ble.profiles import PROFILES
from firmware_sim.ble import encode
from firmware_sim.ble.peripheral import Air, Peripheral, SimClient, Step


def _frames(kind: str) -> Callable[[int], bytes]:
    """The n-th measurement of a device of this kind, with its own time stamp (so never a resend)."""
    start = dt.datetime(2025, 1, 1, 8, 0, 0)

    def when(n: int) -> dt.datetime:
        return start + dt.timedelta(seconds=n)

    if kind == "ble-bp":
        return lambda n: encode.BloodPressure(110 + n % 40, 70 + n % 20, 85 + n % 25, time=when(n),
                                              pulse=60 + n % 30).encode()
    if kind == "ble-thermometer":
        return lambda n: encode.Temperature(36.0 + (n % 15) / 10, time=when(n)).encode()
    if kind == "ble-weight":
        return lambda n: encode.Weight(50.0 + n % 40, time=when(n)).encode()
    return lambda n: encode.BodyComposition(15.0 + n % 20, time=when(n)).encode()


class StreamingPeripheral(Peripheral):
    """Indicates a fresh measurement every ``interval`` seconds while connected; keeps no history."""

    interval: float = 1.0
    counter: itertools.count[int] = itertools.count()

    async def _play(self, client: SimClient, script: list[Step]) -> None:
        make = _frames(self.profile)
        while client.is_connected:
            await asyncio.sleep(self.interval)
            if client.is_connected:
                client._deliver(self.measurement, make(next(self.counter)))


def _factory(kind: str) -> Callable[[str, Mapping[str, Any]], BleDriver]:
    def build(device_id: str, options: Mapping[str, Any]) -> BleDriver:
        air = Air()
        peripheral = StreamingPeripheral(kind, store_live=False, racp=False, live=False)
        peripheral.interval = float(options.get("interval", 1.0))
        peripheral.counter = itertools.count()
        air.add(peripheral)
        return BleDriver(device_id, PROFILES[kind], BleConfig.from_mapping(device_id, {"racp": False}),
                         client_factory=lambda device, on_lost: BleakGattClient(air.client(device, on_lost)),
                         scanner=air)
    return build


DRIVERS = {f"soak-{kind}": _factory(kind) for kind in PROFILES}
