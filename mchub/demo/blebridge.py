"""A simulated Bluetooth blood-pressure monitor inside a hub process, played from outside (hub plugin).

``[hub] plugins = ["mchub.demo.blebridge"]``, then a device ``driver = "sim-ble-bp"``
with ``control_port = N``: the hub runs the real BLE driver (:class:`drivers.ble.manager.BleDriver`
with the real bleak adapter and codecs) against a :mod:`firmware_sim.ble` peripheral in
the hub's own process — BlueZ is not needed. Once the hub subscribes, the peripheral
connects to ``127.0.0.1:N`` where the player (``mchub demo``'s :class:`mchub.demo.devices.BleBpMonitor`,
or a test's :class:`tests.support.kioskrig.StationRig`) sends lines ``<characteristic hex> <frame hex>``
(``2a36`` intermediate cuff pressure, ``2a35`` measurement; frames encoded with
:mod:`firmware_sim.ble.encode`) and indicates each frame to the hub, answering ``ok``.

It lives in ``mchub.demo`` (not ``firmware_sim``, which never imports a driver; not ``edge``, which
ships no synthetic driver): only a demo's or a test's hub.toml names it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from drivers.ble.bleak_transport import BleakGattClient
from drivers.ble.config import BleConfig
from drivers.ble.manager import BleDriver
from drivers.ble.profiles import PROFILES
from firmware_sim.ble.peripheral import Air, Peripheral, SimClient, uuid16


class RemotePeripheral(Peripheral):
    """A BP monitor whose frames come from a TCP control connection."""

    control_port: int = 0

    async def _play(self, client: SimClient, script: list[Any]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.control_port)
        try:
            while client.is_connected and (line := await reader.readline()):
                char, frame = line.decode().split()
                self._indicate(client, uuid16(int(char, 16)), bytes.fromhex(frame), store=False)
                writer.write(b"ok\n")
        finally:
            writer.close()


def sim_ble_bp(device_id: str, options: Mapping[str, Any]) -> BleDriver:
    """Driver factory: the real BLE driver wired to a :class:`RemotePeripheral`."""
    air = Air()
    peripheral = RemotePeripheral("ble-bp", store_live=False, racp=False)
    peripheral.control_port = int(options["control_port"])
    air.add(peripheral)
    table = {k: v for k, v in options.items() if k in ("backoff_initial", "backoff_max")}
    return BleDriver(device_id, PROFILES["ble-bp"], BleConfig.from_mapping(device_id, {"racp": False, **table}),
                     client_factory=lambda device, on_lost: BleakGattClient(air.client(device, on_lost)),
                     scanner=air)


DRIVERS = {"sim-ble-bp": sim_ble_bp}
