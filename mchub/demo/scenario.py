"""Patients walking through a station: card (or the nurse's entry), scale, cuff, done.

Adults and children tap their resident ID card on the reader. A pregnant woman is
registered by the nurse on the hub (staff entry with her weeks of pregnancy), as the
card does not say she is pregnant. Then she steps on the height/weight station and the
BP monitor measures her; when both devices have delivered, the visit is closed on the
hub ("finished", as the kiosk does when the patient taps 完成 / Done).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import aiohttp

from firmware_sim.idcard_sim import CardVisit
from firmware_sim.patients import Patient
from firmware_sim.station_sim import Visit
from mchub.demo.cloudside import DemoError
from mchub.demo.devices import POLL_S, BleBpMonitor, SimDevice, StationRig, wait_for
from mchub.demo.hubside import DemoHub
from mchub.demo.script import Scripted

log = logging.getLogger("mchub.demo")
DEVICE_WAIT_S = 20.0  #: how long a device may take to deliver before the visit is reported stuck


@dataclass
class Tally:
    """What the patients did, for the display and the summary."""

    patients: Counter[str] = field(default_factory=Counter)  #: group -> patients measured
    abnormal: int = 0
    staff_entries: int = 0  #: visits the nurse opened on the hub (pregnant women)
    in_progress: int = 0
    stuck: list[str] = field(default_factory=list)  #: visits a device did not complete
    measured_people: list[Patient] = field(default_factory=list)  #: who finished (for the HIS and PACS)

    @property
    def measured(self) -> int:
        """Patients who finished."""
        return sum(self.patients.values())


def _grown(dev: SimDevice | BleBpMonitor, before: int) -> Callable[[], bool]:
    return lambda: len(dev.delivered) > before


async def visit(http: aiohttp.ClientSession, hub: DemoHub, rig: StationRig, who: Scripted, tally: Tally) -> None:
    """One patient through one station."""
    p = who.patient
    card, hw, bp = (rig.devices[k] for k in ("idcard", "station", "bp"))
    assert isinstance(card, SimDevice) and isinstance(hw, SimDevice)
    where = f"{hub.label}/{rig.station_id}"
    if p.group == "pregnant":
        await hub.post(http, "/api/sessions", {"station_id": rig.station_id, "name": p.name,
                                               "national_id": p.national_id, "pregnant_weeks": p.pregnant_weeks})
        tally.staff_entries += 1
    else:
        before = len(card.delivered)
        card.feed.push(CardVisit(p, gap=1, stay=2))  # type: ignore[arg-type]
        if not await wait_for(lambda: len(card.delivered) > before, DEVICE_WAIT_S):
            tally.stuck.append(f"{where}: the card reader was not read")
            return
        await asyncio.sleep(0.5)  # the hub opens the session before she reaches the scale
    for dev in (hw, bp):
        if isinstance(dev, BleBpMonitor):  # inflates (the kiosk shows the cuff), then measures
            try:
                await asyncio.wait_for(dev.measure(p), DEVICE_WAIT_S)
            except (TimeoutError, ConnectionError, OSError):
                tally.stuck.append(f"{where}: {dev.device_id} did not deliver")
                return
            continue
        before = len(dev.delivered)
        dev.feed.push(Visit(p, stay=3, gap=2))  # type: ignore[arg-type]
        if not await wait_for(_grown(dev, before), DEVICE_WAIT_S):
            tally.stuck.append(f"{where}: {dev.device_id} did not deliver")
            return
    await asyncio.sleep(2 * POLL_S + 0.5)  # the hub has read the last frame and stored it
    await hub.post(http, "/api/sessions/close", {"station_id": rig.station_id, "reason": "finished"})
    tally.patients[p.group] += 1
    tally.measured_people.append(p)
    tally.abnormal += bool(who.abnormal)


async def run_station(http: aiohttp.ClientSession, hub: DemoHub, rig: StationRig, people: Iterator[Scripted],
                      tally: Tally, stop: asyncio.Event, pace_s: float, rng: random.Random) -> None:
    """Patients one after another at ``rig`` until ``stop`` is set (the current visit finishes)."""
    while not stop.is_set():
        who = next(people)
        tally.in_progress += 1
        try:
            await visit(http, hub, rig, who, tally)
        except (DemoError, aiohttp.ClientError, TimeoutError) as exc:
            tally.stuck.append(f"{hub.label}/{rig.station_id}: {exc}")
            log.warning("visit at %s/%s failed: %s", hub.label, rig.station_id, exc)
        finally:
            tally.in_progress -= 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), pace_s * rng.uniform(0.5, 1.5))
