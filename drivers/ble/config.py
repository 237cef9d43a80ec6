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

Each key is declared once, in :class:`BleConfig` (:mod:`protocol.settings`); errors read
``device 'bp-1': key 'racp': "yes" is not true or false; fix: write racp = true``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from drivers.errors import ConfigError
from drivers.options import device_options

_ADDRESS = r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f-]{36}$"
_SECONDS = Meta(ge=0, examples=[20], description="write a number of seconds >= 0")


def _error(device_id: str, key: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"device {device_id!r}: key {key!r}: {problem}; fix: {fix}")


class BleConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Validated settings of one BLE device."""

    address: Annotated[str, Meta(pattern=_ADDRESS, examples=["C4:7C:8D:6A:10:2B"], description=(
        'write the Bluetooth address as "AA:BB:CC:DD:EE:FF" or remove the key'))] | None = None
    racp: bool = True
    racp_delete: bool = True
    pair: bool = False
    scan_timeout: Annotated[float, _SECONDS] = 20.0
    backoff_initial: Annotated[float, Meta(gt=0, examples=[1], description="write a number of seconds > 0")] = 1.0
    backoff_max: Annotated[float, _SECONDS] = 60.0
    #: consecutive failed attempts before giving up (None: never)
    max_attempts: Annotated[int, Meta(ge=1, examples=[5], description=(
        "write a whole number >= 1, or leave the key out to retry forever"))] | None = None

    @classmethod
    def from_mapping(cls, device_id: str, table: Mapping[str, Any]) -> BleConfig:
        """Decode ``table``; ConfigError names the device, the key and the fix."""
        config = device_options(device_id, table, cls, _error)
        if config.backoff_max < config.backoff_initial:
            raise _error(device_id, "backoff_max", f"{config.backoff_max:g} is below backoff_initial "
                         f"({config.backoff_initial:g})", "make backoff_max at least backoff_initial")
        return config
