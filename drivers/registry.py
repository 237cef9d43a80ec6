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


def driver_kinds() -> dict[str, DriverFactory]:
    """Every registered driver kind (``kind = "ble-bp"`` in configuration) by name."""
    out: dict[str, DriverFactory] = {}
    for name in _MODULES:
        out.update(getattr(importlib.import_module(name), "DRIVERS", {}))
    return out
