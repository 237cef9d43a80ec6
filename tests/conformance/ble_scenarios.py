"""Every BLE driver against its simulated peripheral, through the real bleak adapter.

Scenario per profile: two records stored on the device while the hub was away, a refused
first connection, a session with live measurements and a truncated frame that ends in a
dropped link, then a session with garbage, an over-long frame and a NaN value. Checked:
every valid measurement arrives exactly once (live or from storage), every bad frame is
reported with its bytes, and the driver reconnects and carries on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from firmware_sim.ble import encode
from firmware_sim.ble.peripheral import Air, Disconnect, Indicate, Peripheral, uuid16
from tests.drivers.ble.harness import RecordingSink, run_until, sim_driver

T0 = dt.datetime(2024, 5, 1, 9, 0, 0)


def _at(i: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=i)


#: kind -> (valid frame i, frame whose primary value is NaN)
VALID: dict[str, Callable[[int], bytes]] = {
    "ble-bp": lambda i: encode.BloodPressure(110 + i, 70 + i, 85, time=_at(i), pulse=60 + i, status=0).encode(),
    "ble-thermometer": lambda i: encode.Temperature(36.5 + i / 10, time=_at(i), site=6).encode(),
    "ble-weight": lambda i: encode.Weight(60 + i / 2, time=_at(i), user_id=1, bmi=22.0, height=1.65).encode(),
    "ble-body-composition": lambda i: encode.BodyComposition(
        20 + i / 10, time=_at(i), fields={"weight": 60 + i, "impedance": 500.0}).encode(),
}
NAN: dict[str, bytes] = {
    "ble-bp": encode.BloodPressure("nan", 70, 85, time=_at(99)).encode(),
    "ble-thermometer": encode.Temperature("nan", time=_at(99)).encode(),
    "ble-weight": encode.Weight(None, time=_at(99)).encode(),  # 0xFFFF: measurement unsuccessful
    "ble-body-composition": encode.BodyComposition(None, time=_at(99)).encode(),
}


@pytest.mark.parametrize("kind", sorted(VALID))
async def test_driver_against_simulator_with_faults(kind: str) -> None:
    valid = VALID[kind]
    stored = [valid(0), valid(1)]
    live = [valid(2), valid(3), valid(4)]
    truncated, overlong = valid(5)[:-1], valid(6) + b"\x00"
    garbage = b"\xff\x13\x37"
    air = Air()
    device = air.add(Peripheral(kind, stored=list(stored), fail_connects=1))
    device.sessions = [
        [Indicate(live[0]), Indicate(truncated, fault=True), Indicate(live[1]), Disconnect()],
        [Indicate(garbage, fault=True), Indicate(overlong, fault=True), Indicate(live[2]),
         Indicate(NAN[kind], fault=True)],
    ]
    bad = [truncated, garbage, overlong, NAN[kind]]
    sink = RecordingSink()
    driver = sim_driver(air, kind)

    await run_until(driver, sink, lambda: len(sink.measurements) >= 5 and len(sink.errors) >= 4)

    raws = [m.raw for m in sink.measurements]
    assert sorted(raws) == sorted(stored + live), "every valid measurement exactly once"
    assert sorted(e.raw for e in sink.errors) == sorted(bad), "every bad frame reported with its bytes"
    assert {e.reason for e in sink.errors} >= {"truncated", "overlong"}
    assert device.connections == 2 and driver.sessions == 2
    assert driver.duplicates >= 1  # records re-sent from storage after the reconnect were dropped
    assert [c for c, _ in sink.states].count(False) >= 2  # refused connection, dropped link
    assert all(m.device_time is not None for m in sink.measurements)
    assert device.racp_requests[0] == bytes([1, 1])  # report all stored records
    assert bytes([2, 1]) in device.racp_requests  # deleted once delivered


async def test_live_cuff_pressure_is_reported_as_live() -> None:
    air = Air()
    icp = encode.BloodPressure(142, time=None).encode()
    final = VALID["ble-bp"](0)
    air.add(Peripheral("ble-bp", sessions=[[Indicate(icp, uuid16(0x2A36)), Indicate(final)]]))
    sink = RecordingSink()
    await run_until(sim_driver(air, "ble-bp"), sink, lambda: len(sink.measurements) >= 2)
    cuff, bp = sink.measurements
    assert cuff.live and cuff.kind == "cuff_pressure" and cuff.observations[0].value == 142
    assert not bp.live and bp.kind == "blood_pressure"
