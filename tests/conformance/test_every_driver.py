"""One conformance suite for every driver the hub can be configured with.

Each registered driver kind runs against its independent simulator over a real
transport — a pseudo-terminal for serial devices, TCP for Modbus, Mosquitto for MQTT, the
real bleak adapter over a simulated peripheral for BLE — with faults injected (garbage,
bad checksums, truncated and over-long frames, NaN/NRes, refused and dropped links,
slow devices). Every scenario checks the same contract:

* every valid measurement arrives exactly once;
* every bad frame is reported (with its bytes), never silently dropped;
* the driver recovers after a disconnect and carries on.

The scenarios themselves live beside this file, one module per family
(``ble_scenarios``, ``serial_scenarios``, ``fieldbus_scenarios``); adding a driver kind to
``drivers.registry`` without a scenario here fails ``test_every_driver_kind_is_covered``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from drivers import registry
from tests.conformance import ble_scenarios as ble
from tests.conformance import fieldbus_scenarios as fieldbus
from tests.conformance import serial_scenarios as serial

Scenario = Callable[[pytest.FixtureRequest, Path], Awaitable[None]]


def _ble(kind: str) -> Scenario:
    return lambda request, tmp: ble.test_driver_against_simulator_with_faults(kind)


def _serial(case: serial.Case) -> Scenario:
    return lambda request, tmp: serial.test_driver_against_simulator_over_pty(case, tmp)


def _fieldbus(table: dict[str, fieldbus.Scenario], kind: str) -> Scenario:
    return lambda request, tmp: table[kind](kind, request)


SCENARIOS: list[tuple[str, str, Scenario]] = [
    *[(kind, "faults", _ble(kind)) for kind in sorted(ble.VALID)],
    ("ble-bp", "live-cuff-pressure", lambda request, tmp: ble.test_live_cuff_pressure_is_reported_as_live()),
    *[("idcard" if c.name == "idcard" else "serial-bp" if c.name.startswith("accutorr") else "serial-station",
       c.name, _serial(c)) for c in serial.CASES],
    *[(kind, "faults", _fieldbus(fieldbus.CONFORMANCE, kind)) for kind in sorted(fieldbus.CONFORMANCE)],
    *[(kind, "hub-crash", _fieldbus(fieldbus.CRASH, kind)) for kind in sorted(fieldbus.CRASH)],
]


@pytest.mark.parametrize(("kind", "name", "scenario"), SCENARIOS, ids=[f"{k}/{n}" for k, n, _ in SCENARIOS])
async def test_driver_conforms(kind: str, name: str, scenario: Scenario, request: pytest.FixtureRequest,
                               tmp_path: Path) -> None:
    await scenario(request, tmp_path)


def test_every_driver_kind_is_covered() -> None:
    assert set(registry.driver_kinds()) == {kind for kind, _, _ in SCENARIOS}
