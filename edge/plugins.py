"""Which driver kinds a hub can run: the shared registry (what mchub ships) and site plugins.

A plugin is any importable module with a ``DRIVERS: dict[str, DriverFactory]``, named in
``[hub] plugins`` of hub.toml (the test suite uses this for its test devices). The hub
registers no driver of its own: a driver kind that is neither shipped nor named by a
plugin is refused with a configuration error naming file, key and fix.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from drivers.errors import ConfigError as DriverConfigError
from drivers.registry import DriverFactory, driver_kinds
from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.config import HubConfig


def known_drivers(plugins: tuple[str, ...] = ()) -> dict[str, DriverFactory]:
    """Every driver kind by name; later sources override earlier ones."""
    kinds: dict[str, DriverFactory] = dict(driver_kinds())
    for name in plugins:
        kinds.update(getattr(importlib.import_module(name), "DRIVERS", {}))
    return kinds


def validate_devices(cfg: HubConfig) -> None:
    """Build every configured driver once, so a bad device table fails at start, naming its key.

    Driver factories only read their table (no I/O happens until ``run``); a
    ``drivers.errors.ConfigError`` becomes an :class:`edge.errors.ConfigError`.
    """
    kinds = known_drivers(cfg.plugins)
    for i, station in enumerate(cfg.stations):
        for j, device in enumerate(station.devices):
            if device.driver not in kinds:  # a device the cloud pushed, of a kind this hub does not ship
                raise ConfigError(str(cfg.path), f"stations[{i}].devices[{j}].driver",
                                  f"device {device.id!r}: this hub has no driver {device.driver!r}",
                                  "register the device with one of: " + ", ".join(sorted(kinds))
                                  + " (`mchub decode --list`), or upgrade mchub on this hub")
            try:
                kinds[device.driver](device.id, device.options)
            except (DriverConfigError, KeyError, ValueError, TypeError) as exc:
                raise ConfigError(str(cfg.path), f"stations[{i}].devices[{j}]",
                                  f"driver {device.driver!r} refuses this device: {exc}",
                                  "correct the device's keys (see the driver's documentation)") from exc
