"""Which driver kinds a hub can run: the shared registry, edge's built-ins, site plugins.

A plugin is any importable module with a ``DRIVERS: dict[str, DriverFactory]``, named in
``[hub] plugins`` of hub.toml (the test suite uses this for its line-protocol device).
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
    from edge import synthetic

    kinds: dict[str, DriverFactory] = dict(driver_kinds())
    kinds.update(synthetic.DRIVERS)
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
            try:
                kinds[device.driver](device.id, device.options)
            except (DriverConfigError, KeyError, ValueError, TypeError) as exc:
                raise ConfigError(str(cfg.path), f"stations[{i}].devices[{j}]",
                                  f"driver {device.driver!r} refuses this device: {exc}",
                                  "correct the device's keys (see the driver's documentation)") from exc
