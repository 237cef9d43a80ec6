"""Which driver kinds a hub can run: the shared registry, edge's built-ins, site plugins.

A plugin is any importable module with a ``DRIVERS: dict[str, DriverFactory]``, named in
``[hub] plugins`` of hub.toml (the test suite uses this for its line-protocol device).
"""

from __future__ import annotations

import importlib

from drivers.registry import DriverFactory, driver_kinds


def known_drivers(plugins: tuple[str, ...] = ()) -> dict[str, DriverFactory]:
    """Every driver kind by name; later sources override earlier ones."""
    from edge import synthetic

    kinds: dict[str, DriverFactory] = dict(driver_kinds())
    kinds.update(synthetic.DRIVERS)
    for name in plugins:
        kinds.update(getattr(importlib.import_module(name), "DRIVERS", {}))
    return kinds
