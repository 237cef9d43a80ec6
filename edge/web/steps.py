"""The kiosk's step list (pure): the station's devices in the order hub.toml lists them, each done
once it reported in the visit, the first one not done highlighted as the next.

A step is named for what it measures: from the values the device reported in this visit when
there are some, else from its driver kind (``serial-bp``, ``ble-thermometer`` ...). The catalog
words are ``kiosk.step.<name>``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from protocol import codes

#: drivers that identify the patient rather than measure her
CARD_DRIVERS = frozenset({"idcard"})
#: (code a device reported, step) in order of precedence
_BY_CODE = ((codes.SYSTOLIC, "bp"), (codes.HEIGHT, "height_weight"), (codes.WEIGHT, "weight"),
            (codes.TEMPERATURE, "temperature"))
#: (part of a driver kind, step), first match wins
_BY_DRIVER = (("bp", "bp"), ("thermo", "temperature"), ("temp", "temperature"), ("station", "height_weight"),
              ("body-composition", "weight"), ("weight", "weight"), ("scale", "weight"))


@dataclass(frozen=True)
class Step:
    """One line of the step list: ``name`` (catalog ``kiosk.step.<name>``), ``state`` done/next/todo."""

    device_id: str
    name: str
    state: str


def step_name(driver: str, reported: Iterable[str] = ()) -> str:
    """What a device's step is called: by the codes it reported, else by its driver kind."""
    got = set(reported)
    for code, name in _BY_CODE:
        if code in got:
            return name
    for part, name in _BY_DRIVER:
        if part in driver:
            return name
    return "other"


def steps(devices: Sequence[Any], identified: bool, readings: Iterable[Mapping[str, Any]],
          measuring: str | None = None) -> list[Step]:
    """The step list of a station (``devices``: its :class:`edge.config.DeviceConfig` list) for a visit
    whose readings are ``readings`` (none while nobody is identified). The highlighted step is the
    first one not done, or the step named ``measuring`` while a device of that kind measures (the
    cuff inflating: the patient may take the steps in any order)."""
    reported: dict[str, set[str]] = {}
    for r in readings:
        reported.setdefault(r["device_id"], set()).update(o["code"] for o in r["observations"])
    named = [(d, "card" if d.driver in CARD_DRIVERS else step_name(d.driver, reported.get(d.id, ()))) for d in devices]
    done = {d.id: (identified if name == "card" else d.id in reported) for d, name in named}
    now = next((d.id for d, name in named if name == measuring and not done[d.id]), None)
    now = now or next((d.id for d, _ in named if not done[d.id]), None)
    return [Step(d.id, name, "done" if done[d.id] else "next" if d.id == now else "todo") for d, name in named]


def next_step(result: Sequence[Step]) -> Step | None:
    """The highlighted step, or None when every step is done."""
    return next((s for s in result if s.state == "next"), None)
