"""Configuration of one BLE device (a ``[[station.device]]`` table in hub.toml).

    [[station.device]]
    id = "bp-1"
    kind = "ble-bp"                # ble-bp | ble-thermometer | ble-weight | ble-body-composition
    address = "C4:7C:8D:6A:10:2B"  # optional: without it the first device advertising the service is used
    racp = true                    # fetch records stored while the hub was away (default true)
    racp_delete = true             # delete them on the device once durably stored (default true)
    pair = false                   # bond before use (monitors that only send to a bonded hub)
    scan_timeout = 20              # seconds per scan
    backoff_initial = 1            # seconds before the first reconnect attempt
    backoff_max = 60               # cap of the exponential backoff
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from drivers.errors import ConfigError

_ADDRESS = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f-]{36}$")


@dataclass(frozen=True)
class BleConfig:
    """Validated settings of one BLE device."""

    address: str | None = None
    racp: bool = True
    racp_delete: bool = True
    pair: bool = False
    scan_timeout: float = 20.0
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    max_attempts: int | None = None  #: consecutive failed attempts before giving up (None: never)

    @classmethod
    def from_mapping(cls, device_id: str, table: Mapping[str, Any]) -> BleConfig:
        """Validate ``table``; ConfigError names the device, the key and the fix."""

        def fail(key: str, fix: str) -> ConfigError:
            return ConfigError(f"device {device_id!r}: key {key!r}: {fix}")

        address = table.get("address")
        if address is not None and (not isinstance(address, str) or not _ADDRESS.match(address)):
            raise fail("address", 'write the Bluetooth address as "AA:BB:CC:DD:EE:FF" or remove the key')
        flags = {}
        for key in ("racp", "racp_delete", "pair"):
            value = table.get(key, getattr(cls, key))
            if not isinstance(value, bool):
                raise fail(key, "must be true or false")
            flags[key] = value
        numbers = {}
        for key in ("scan_timeout", "backoff_initial", "backoff_max"):
            value = table.get(key, getattr(cls, key))
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise fail(key, "must be a number of seconds >= 0")
            numbers[key] = float(value)
        if numbers["backoff_initial"] <= 0:
            raise fail("backoff_initial", "must be a number of seconds > 0")
        if numbers["backoff_max"] < numbers["backoff_initial"]:
            raise fail("backoff_max", "must be at least backoff_initial")
        attempts = table.get("max_attempts")
        if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1):
            raise fail("max_attempts", "must be a whole number >= 1, or be left out to retry forever")
        return cls(address=address, racp=flags["racp"], racp_delete=flags["racp_delete"], pair=flags["pair"],
                   scan_timeout=numbers["scan_timeout"], backoff_initial=numbers["backoff_initial"],
                   backoff_max=numbers["backoff_max"], max_attempts=attempts)
