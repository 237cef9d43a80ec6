"""The connection manager: backoff, device selection, stored records, crash safety."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import pytest

from drivers.base import Event
from drivers.ble import DRIVERS
from drivers.ble.config import BleConfig
from drivers.ble.manager import BleDriver
from drivers.errors import ConfigError, TransportError
from firmware_sim.ble import encode
from firmware_sim.ble.peripheral import RACP, Air, Disconnect, Indicate, Pause, Peripheral, Store
from tests.drivers.ble.harness import RecordingSink, run_until, sim_driver
from tests.support.waiting import HANG_S


def reading(i: int) -> bytes:
    return encode.Temperature(36.0 + i / 10, time=dt.datetime(2024, 2, 1, 8, i)).encode()


async def test_backoff_doubles_up_to_the_cap_then_gives_up() -> None:
    air = Air()  # nothing in range
    sleeps: list[float] = []
    driver = sim_driver(air, "ble-thermometer", sleeps=sleeps, backoff_initial=1, backoff_max=4, max_attempts=6)
    sink = RecordingSink()
    with pytest.raises(TransportError, match="giving up after 6 failed attempts"):
        await driver.run(sink)
    caps = [1, 2, 4, 4, 4]
    assert len(sleeps) == 5
    assert all(cap / 2 <= s <= cap for s, cap in zip(sleeps, caps, strict=True))  # jitter: half to full
    assert all(not connected and "not found" in detail for connected, detail in sink.states)


async def test_a_session_resets_the_backoff() -> None:
    air = Air()
    device = air.add(Peripheral("ble-thermometer", fail_connects=3, racp=False))
    device.sessions = [[Indicate(reading(1)), Disconnect()], [Indicate(reading(2))]]
    sleeps: list[float] = []
    sink = RecordingSink()
    driver = sim_driver(air, "ble-thermometer", sleeps=sleeps, backoff_initial=1, backoff_max=60)
    await run_until(driver, sink, lambda: len(sink.measurements) == 2)
    # three refusals (1, 2, 4 s caps), a session, then back to the initial delay
    assert len(sleeps) == 4 and sleeps[2] > 2 and sleeps[3] <= 1


async def test_configured_address_picks_that_device() -> None:
    air = Air()
    when = dt.datetime(2024, 2, 1, 8, 0)
    for address, kg in (("AA:00:00:00:00:01", 80.0), ("AA:00:00:00:00:02", 55.5)):
        air.add(Peripheral("ble-weight", address, sessions=[[Indicate(encode.Weight(kg, time=when).encode())]]))
    sink = RecordingSink()
    await run_until(sim_driver(air, "ble-weight", address="aa:00:00:00:00:02"), sink, lambda: bool(sink.measurements))
    assert [m.observations[0].value for m in sink.measurements] == [55.5]


async def test_readings_without_time_stamp_are_matched_as_a_multiset() -> None:
    """A scale without a clock: its live reading is also kept in its memory, the link drops
    before the hub could delete it, and a second, equal reading was taken while away. After
    the reconnect the memory holds both; exactly one of them is new."""
    air = Air()
    x = encode.Weight(61.5).encode()
    device = air.add(Peripheral("ble-weight"))
    device.sessions = [[Pause(), Indicate(x), Store(x), Disconnect()], []]
    sink = RecordingSink()
    driver = sim_driver(air, "ble-weight")
    await run_until(driver, sink, lambda: len(sink.measurements) == 2)
    assert [m.raw for m in sink.measurements] == [x, x] and device.stored == []
    assert driver.duplicates == 1


async def test_device_without_racp_still_delivers() -> None:
    air = Air()
    device = air.add(Peripheral("ble-thermometer", racp=False, sessions=[[Indicate(reading(1))]]))
    sink = RecordingSink()
    await run_until(sim_driver(air, "ble-thermometer"), sink, lambda: bool(sink.measurements))
    assert len(sink.measurements) == 1 and device.racp_requests == []


async def test_monitor_without_cuff_pressure_characteristic() -> None:
    air = Air()
    bp = encode.BloodPressure(121, 79, 93, time=dt.datetime(2024, 2, 1, 8, 0)).encode()
    air.add(Peripheral("ble-bp", live=False, sessions=[[Indicate(bp)]]))
    sink = RecordingSink()
    await run_until(sim_driver(air, "ble-bp"), sink, lambda: bool(sink.measurements))
    assert [m.raw for m in sink.measurements] == [bp] and sink.errors == []


async def test_keeping_records_on_the_device_still_delivers_each_once() -> None:
    air = Air()
    device = air.add(Peripheral("ble-thermometer", stored=[reading(0)]))
    device.sessions = [[Indicate(reading(1)), Disconnect()], [Indicate(reading(2))]]
    sink = RecordingSink()
    driver = sim_driver(air, "ble-thermometer", racp_delete=False)
    await run_until(driver, sink, lambda: len(sink.measurements) == 3)
    assert sorted(m.raw for m in sink.measurements) == sorted([reading(0), reading(1), reading(2)])
    assert bytes([2, 1]) not in device.racp_requests and len(device.stored) == 3
    assert driver.duplicates >= 2  # the second session's transfer re-sent what had been delivered


async def test_racp_disabled_leaves_storage_alone() -> None:
    air = Air()
    device = air.add(Peripheral("ble-thermometer", stored=[reading(0)], sessions=[[Indicate(reading(1))]]))
    sink = RecordingSink()
    await run_until(sim_driver(air, "ble-thermometer", racp=False), sink, lambda: bool(sink.measurements))
    assert len(sink.measurements) == 1 and device.racp_requests == []


async def test_records_are_not_deleted_before_the_hub_stored_them() -> None:
    air = Air()
    device = air.add(Peripheral("ble-thermometer", stored=[reading(0), reading(1), reading(2)]))
    gate = asyncio.Event()

    class SlowStore(RecordingSink):
        async def event(self, event: Event) -> None:
            await gate.wait()  # the hub's fsync is slow
            await super().event(event)

    sink = SlowStore()
    task = asyncio.create_task(sim_driver(air, "ble-thermometer").run(sink))
    await _until(lambda: len(device.sent) >= 4)  # 3 records + RACP response
    for _ in range(100):
        await asyncio.sleep(0)
    assert device.racp_requests == [bytes([1, 1])] and len(device.stored) == 3
    gate.set()
    await asyncio.wait_for(sink.wait_for(lambda: len(sink.measurements) == 3), HANG_S)
    await _until(lambda: not device.stored)
    assert device.racp_requests == [bytes([1, 1]), bytes([2, 1])]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(100_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def test_store_failure_loses_nothing() -> None:
    """The hub's store fails on the second record: the driver stops, the device keeps its
    records, and a restarted driver delivers them."""
    air = Air()
    records = [reading(0), reading(1), reading(2)]
    device = air.add(Peripheral("ble-thermometer", stored=list(records)))

    class BrokenStore(RecordingSink):
        async def event(self, event: Event) -> None:
            if self.events:
                raise OSError(28, "No space left on device")
            await super().event(event)

    broken = BrokenStore()
    with pytest.raises(OSError, match="No space"):
        await asyncio.wait_for(sim_driver(air, "ble-thermometer", max_attempts=1).run(broken), HANG_S)
    assert device.stored == records  # nothing deleted
    sink = RecordingSink()
    restarted = sim_driver(air, "ble-thermometer")
    restarted.remember(m.raw for m in broken.measurements)  # what the hub had stored before failing
    await run_until(restarted, sink, lambda: len(sink.measurements) == 2)
    assert sorted(m.raw for m in broken.measurements + sink.measurements) == sorted(records)
    assert restarted.duplicates == 1 and device.stored == []


async def test_link_lost_during_stored_record_transfer() -> None:
    air = Air()
    records = [reading(i) for i in range(5)]
    device = air.add(Peripheral("ble-thermometer", stored=list(records), racp_drop_after=2))
    sink = RecordingSink()
    await run_until(sim_driver(air, "ble-thermometer"), sink, lambda: len(sink.measurements) == 5)
    assert sorted(m.raw for m in sink.measurements) == sorted(records)
    assert device.connections == 2 and device.stored == []


async def test_bad_racp_answer_is_reported() -> None:
    air = Air()
    air.add(Peripheral("ble-thermometer", sessions=[[Indicate(b"\x09\x09", char=RACP, fault=True),
                                                     Indicate(reading(1))]]))
    sink = RecordingSink()
    await run_until(sim_driver(air, "ble-thermometer"), sink, lambda: bool(sink.measurements and sink.errors))
    assert sink.errors[0].reason == "bad_racp_response" and sink.errors[0].raw == b"\x09\x09"


@pytest.mark.parametrize(
    ("table", "key"),
    [({"address": "not-an-address"}, "address"), ({"racp": "yes"}, "racp"), ({"racp_delete": 1}, "racp_delete"),
     ({"scan_timeout": -1}, "scan_timeout"), ({"backoff_max": "10s"}, "backoff_max"),
     ({"max_attempts": 0}, "max_attempts"), ({"pair": "true"}, "pair")],
)
def test_configuration_errors_name_the_key_and_the_fix(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=f"device 'bp-1': key '{key}': .*"):
        BleConfig.from_mapping("bp-1", table)


@pytest.mark.parametrize(("table", "message"), [
    ({"scan_timeout": "20s"}, "device 'bp-1': key 'scan_timeout': '20s' is not a number >= 0; "
                              "fix: write a number of seconds >= 0"),
    ({"max_attempts": 0}, "device 'bp-1': key 'max_attempts': 0 is not an integer >= 1; fix: write a whole number"),
    ({"backoff_initial": 0}, "device 'bp-1': key 'backoff_initial': 0 is not a number > 0; fix: "),
    ({"backoff_initial": 5, "backoff_max": 2}, "device 'bp-1': key 'backoff_max': 2 is below backoff_initial (5)"),
])
def test_a_wrong_type_or_range_says_what_the_key_takes(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        BleConfig.from_mapping("bp-1", table)
    assert str(err.value).startswith(message), err.value


def test_driver_kinds_build_drivers() -> None:
    assert sorted(DRIVERS) == ["ble-body-composition", "ble-bp", "ble-thermometer", "ble-weight"]
    driver = DRIVERS["ble-bp"]("bp-1", {"address": "C4:7C:8D:6A:10:2B"})
    assert isinstance(driver, BleDriver) and driver.device_id == "bp-1"
    assert driver.config.address == "C4:7C:8D:6A:10:2B" and not driver.config.pair
    assert DRIVERS["ble-thermometer"]("t-1", {"pair": True}).config.pair  # type: ignore[attr-defined]
    with pytest.raises(ConfigError):
        DRIVERS["ble-weight"]("w-1", {"racp": "no"})


async def test_untimed_records_of_a_new_drivers_first_transfer_are_marked_as_repeats() -> None:
    """After a hub restart the driver remembers nothing: the hub compares such a record with the
    last reading it stored from the device (edge.store.repeats); time-stamped ones it knows by key."""
    x = encode.Weight(61.5).encode()
    scale, thermometer = Air(), Air()
    scale.add(Peripheral("ble-weight", stored=[x]))
    thermometer.add(Peripheral("ble-thermometer", stored=[reading(3)]))
    untimed, stamped = RecordingSink(), RecordingSink()
    await run_until(sim_driver(scale, "ble-weight"), untimed, lambda: bool(untimed.measurements))
    await run_until(sim_driver(thermometer, "ble-thermometer"), stamped, lambda: bool(stamped.measurements))
    assert [m.repeats for m in untimed.measurements] == [True]
    assert [m.repeats for m in stamped.measurements] == [False]
