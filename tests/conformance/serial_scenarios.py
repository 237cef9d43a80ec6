"""Every serial driver against its simulator over a real pseudo-terminal, with faults.

The simulator (firmware_sim, which never imports drivers) runs a scripted queue of
patients and a fixed fault script; the driver comes from the registry factory and runs
under a tiny supervisor that builds it again after a TransportError, as the hub's
supervisor does. Checks: every valid measurement
arrives exactly once and in order, every frame broken on purpose is reported, and the
driver recovers after the simulated disconnect (the pty is replaced and its stable
symlink moved, like a replugged USB adapter).

No timed assertions: the test waits for the simulator to finish its script and then for
a final sentinel patient; timeouts only guard against a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers import registry
from drivers.base import CardRead, Event, Measurement
from drivers.errors import FrameError, TransportError
from firmware_sim.faults import FaultPlan
from firmware_sim.idcard_sim import CardVisit, IdCardReaderSim
from firmware_sim.patients import Patient, make_patient
from firmware_sim.serial_host import PtyEndpoint, serve
from firmware_sim.station_sim import StationSim, Values, Visit

FAULT_SCRIPT: list[str | None] = [
    "garbage", None, "bad_checksum", "disconnect", "truncate", None, "slow", "nan", "out_of_range",
]


class RecordingSink:
    """The hub side: collects events, frame errors and link states."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.errors: list[FrameError] = []
        self.states: list[bool] = []
        self.changed = asyncio.Event()

    async def event(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    def frame_error(self, error: FrameError) -> None:
        self.errors.append(error)

    def state(self, connected: bool, detail: str = "") -> None:
        self.states.append(connected)


async def supervise(factory: Callable[[], Any], sink: RecordingSink, restarts: list[str]) -> None:
    """Like the hub's supervisor: build the driver from its factory and build it again after a failure."""
    while True:
        try:
            await factory().run(sink)
        except TransportError as exc:
            restarts.append(str(exc))
            await asyncio.sleep(0.05)


def people(n: int, seed: int) -> list[Patient]:
    rng = random.Random(seed)
    groups = itertools.cycle(["adult", "child", "pregnant", "adult"])
    return [make_patient(rng, next(groups), today=dt.date(2025, 3, 1)) for _ in range(n)]  # type: ignore[arg-type]


@dataclass
class Case:
    name: str
    make_sim: Callable[[list[Patient], FaultPlan], IdCardReaderSim | StationSim]
    config: dict[str, Any]


def station_case(dialect: str, mode: str) -> Case:
    def make(ps: list[Patient], plan: FaultPlan) -> StationSim:
        return StationSim(dialect, mode, iter([Visit(p, stay=3, gap=2) for p in ps]), plan, interval=0.08)
    config = {"dialect": dialect, "mode": mode, "poll_interval": 0.04, "idle_flush": 0.15}
    return Case(f"{dialect}-{mode}", make, config)


CASES = [
    Case("idcard", lambda ps, plan: IdCardReaderSim(iter([CardVisit(p, gap=2, stay=2) for p in ps]), plan),
         {"poll_interval": 0.02, "timeout": 0.5, "dedupe_seconds": 60}),
    station_case("a5", "push"), station_case("a5", "poll"),
    station_case("tanita-csv", "push"), station_case("tanita-csv", "poll"),
    station_case("detecto", "push"), station_case("detecto", "poll"),
    station_case("accutorr", "poll"),
]


def as_values(event: Event) -> Values | str:
    if isinstance(event, CardRead):
        return event.subject.national_id or ""
    assert isinstance(event, Measurement)
    v = {o.code: o.value for o in event.observations}
    return Values(height_cm=v.get("8302-2"), weight_kg=v.get("29463-7"), systolic=v.get("8480-6"),  # type: ignore[arg-type]
                  diastolic=v.get("8462-4"), mean=v.get("8478-0"), pulse=v.get("8867-4"))


def same(got: Values | str, want: Values | str) -> bool:
    if isinstance(want, str) or isinstance(got, str):
        return got == want
    pairs = [(got.height_cm, want.height_cm, 0.3), (got.weight_kg, want.weight_kg, 0.1),
             (got.systolic, want.systolic, 0), (got.diastolic, want.diastolic, 0), (got.mean, want.mean, 0),
             (got.pulse, want.pulse, 0)]
    return all((a is None) == (b is None) and (a is None or abs(a - b) <= tol)  # type: ignore[operator]
               for a, b, tol in pairs)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_driver_against_simulator_over_pty(case: Case, tmp_path: Path) -> None:
    patients = people(12, seed=sum(map(ord, case.name)))
    sentinel = patients[-1]
    plan = FaultPlan(script=list(FAULT_SCRIPT), seed=7)
    sim = case.make_sim(patients, plan)
    link = str(tmp_path / "ttySIM0")
    endpoint = PtyEndpoint(link)
    stop = asyncio.Event()
    server = asyncio.create_task(serve(sim, endpoint, plan, stop, pause=0.4, avoid=b"\xaa\xa5"))
    config = {"address": link, **case.config}
    kind = "idcard" if case.name == "idcard" else "serial-station"
    factory = registry.driver_kinds()[kind]
    sink, restarts = RecordingSink(), []
    runner = asyncio.create_task(supervise(lambda: factory(f"{case.name}-1", config), sink, restarts))

    async def sentinel_arrived() -> None:
        want = sentinel.national_id if case.name == "idcard" else None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sink.changed.wait(), 0.05)
            sink.changed.clear()
            if sim.finished and sim.delivered and sink.events:
                last = as_values(sink.events[-1])
                if (want is not None and last == want) or (want is None and same(last, sim.delivered[-1])):
                    return

    try:
        await asyncio.wait_for(sentinel_arrived(), timeout=float(os.environ.get("SIM_TIMEOUT", "60")))
    finally:
        runner.cancel()
        stop.set()
        server.cancel()
        await asyncio.gather(runner, server, return_exceptions=True)
        endpoint.close()

    got = [as_values(e) for e in sink.events]
    assert len(got) == len(sim.delivered), (got, sim.delivered)
    assert all(same(g, w) for g, w in zip(got, sim.delivered, strict=True))
    assert "disconnect" in plan.log and restarts, "the disconnect was exercised and survived"
    assert len(sink.errors) >= sim.bad_frames >= 3, [e.reason for e in sink.errors]
    reasons = {e.reason for e in sink.errors}
    assert "invalid_value" in reasons  # nan / bad card data
    flagged = [e for e in sink.events if isinstance(e, Measurement) and any(o.flag == "A" for o in e.observations)]
    if case.name != "idcard":
        assert flagged, "the out-of-range value arrived, flagged A"
