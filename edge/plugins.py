"""Which driver kinds a hub can run: the shared registry (what mchub ships) and site plugins.

A plugin is any importable module with a ``DRIVERS: dict[str, DriverFactory]``, named in
``[hub] plugins`` of hub.toml (the test suite uses this for its test devices). The hub
registers no driver of its own: a driver kind that is neither shipped nor named by a
plugin is refused with a configuration error naming file, key and fix
(:func:`edge.config.load`, :func:`edge.config.validate_devices`).
"""

from __future__ import annotations

import importlib

from drivers.registry import DriverFactory, driver_kinds


def known_drivers(plugins: tuple[str, ...] = ()) -> dict[str, DriverFactory]:
    """Every driver kind by name; later sources override earlier ones."""
    kinds: dict[str, DriverFactory] = dict(driver_kinds())
    for name in plugins:
        kinds.update(getattr(importlib.import_module(name), "DRIVERS", {}))
    return kinds
