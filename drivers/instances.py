"""One driver object per configured device, so its state survives a restart.

The hub's supervisor builds a driver from its factory again after a link failure. A
driver that remembers what it already reported (the ID-card reader's last card, a polled
station's last measurement, the BP monitor's last result) must not forget it then, or
the first poll after a reconnect would report the same reading twice. Factories
therefore go through :func:`reuse`: the same device id with the same configuration gets
the same object back; a changed configuration gets a fresh one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_INSTANCES: dict[tuple[str, str, str], Any] = {}


def reuse(kind: str, device_id: str, config: Mapping[str, Any], build: Callable[[], T]) -> T:
    """The existing object for ``(kind, device_id, config)``, or a new one from ``build()``."""
    key = (kind, device_id, json.dumps(dict(config), sort_keys=True, default=str))
    if key not in _INSTANCES:
        for old in [k for k in _INSTANCES if k[:2] == key[:2]]:
            del _INSTANCES[old]  # the configuration changed: forget the old object
        _INSTANCES[key] = build()
    instance: T = _INSTANCES[key]
    return instance
