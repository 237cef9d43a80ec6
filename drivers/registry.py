"""Registry of frame codecs (for ``mchub decode``) and driver kinds (for hub configuration).

Each device-family module declares ``CODECS: list[CodecInfo]`` and/or
``DRIVERS: dict[str, DriverFactory]``; add the module's name to ``_MODULES`` below.
Modules are imported only when the registry is first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from drivers.base import Driver, Event

#: device-family modules, in the order ``mchub decode --list`` shows them
_MODULES: list[str] = [
    "drivers.ble",
    "drivers.modbus",
    "drivers.mqtt",
    "drivers.idcard",
    "drivers.stations",
]


@dataclass(frozen=True)
class CodecInfo:
    """A named single-frame decoder."""

    name: str  #: e.g. "ble-bp"
    description: str
    decode: Callable[[bytes], list[Event]]  #: raises FrameError
    #: sample valid frames (``mchub decode`` examples, ``bench/bench_codecs.py`` input)
    examples: tuple[bytes, ...] = ()


#: builds a driver from its configuration table (``[[station.device]]`` in hub.toml)
DriverFactory = Callable[[str, Mapping[str, Any]], Driver]


def codecs() -> dict[str, CodecInfo]:
    """Every registered codec by name."""
    out: dict[str, CodecInfo] = {}
    for name in _MODULES:
        for info in getattr(importlib.import_module(name), "CODECS", []):
            out[info.name] = info
    return out


#: each driver kind's device-family module (``DRIVERS`` of that module; a test keeps the two equal)
KIND_MODULES: dict[str, str] = {
    "ble-body-composition": "drivers.ble", "ble-bp": "drivers.ble", "ble-thermometer": "drivers.ble",
    "ble-weight": "drivers.ble", "modbus-rtu": "drivers.modbus", "modbus-tcp": "drivers.modbus",
    "mqtt": "drivers.mqtt", "idcard": "drivers.idcard", "serial-bp": "drivers.stations",
    "serial-station": "drivers.stations",
}


@dataclass(frozen=True)
class _Lazy:
    """A driver kind's factory that imports its device family on first use: a hub imports only the drivers
    its configuration names (every family's codecs and drivers held ~1 MB, issue 21)."""

    kind: str

    def __call__(self, device_id: str, table: Mapping[str, Any]) -> Driver:
        factory: DriverFactory = importlib.import_module(KIND_MODULES[self.kind]).DRIVERS[self.kind]
        return factory(device_id, table)


#: one factory object per kind, so a reload sees an unchanged kind as the same factory (edge/supervisor.py)
_LAZY: dict[str, DriverFactory] = {kind: _Lazy(kind) for kind in KIND_MODULES}


def driver_kinds() -> dict[str, DriverFactory]:
    """Every shipped driver kind (``kind = "ble-bp"`` in configuration) by name; nothing is imported
    before a factory is called."""
    return dict(_LAZY)
