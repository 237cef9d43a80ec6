"""Every fieldbus driver against its simulator over a real transport, with faults injected.

* ``modbus-tcp``: the pymodbus client against a pymodbus TCP server simulating the station
* ``modbus-rtu``: the pymodbus serial client on a pseudo-terminal against the simulator's
  own RTU framing on the master side
* ``mqtt``: aiomqtt through a relay we can cut, to the throwaway Mosquitto broker

Each run checks the same promises: every valid measurement arrives exactly once, every bad
frame is reported, the driver recovers after the link drops, and a hub that crashes before
storing a measurement loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from drivers.base import Measurement
from drivers.modbus.driver import ModbusDriver
from drivers.modbus.example import EXAMPLE_MAP
from drivers.modbus.transport import rtu_link, tcp_link
from drivers.mqtt.driver import MqttDriver
from firmware_sim import modbus_station as ms
from firmware_sim import mqtt_device as md
from firmware_sim.modbus import ModbusTcpStation
from firmware_sim.modbus_rtu import RtuSlave
from firmware_sim.netfaults import FaultProxy
from tests.support.fieldbus import GUARD, HubCrash, RecordingSink, until
from tests.support.services import free_port


@contextlib.asynccontextmanager
async def running(driver: Any, sink: RecordingSink) -> Any:
    task = asyncio.create_task(driver.run(sink))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, HubCrash):
            await task


# ---------------------------------------------------------------- Modbus

MEASURES = [ms.Measure(165.5, 66.4, 24.2), ms.Measure(170.0, 70.2, 24.3), ms.Measure(150.3, 50.0, 22.1),
            ms.Measure(180.0, 90.5, 27.9), ms.Measure(120.1, 25.5, 17.7)]


def modbus_values(events: list[Measurement]) -> list[tuple[float, ...]]:
    return [tuple(o.value for o in e.observations) for e in events]


@contextlib.asynccontextmanager
async def modbus_station(transport: str, station: ms.Station, request: pytest.FixtureRequest) -> Any:
    """Serve ``station``; yields a factory of drivers connected to it."""
    def driver(link: Callable[[], Any]) -> ModbusDriver:
        return ModbusDriver("hw-1", EXAMPLE_MAP, link, poll_interval=0.02)

    if transport == "modbus-tcp":
        port = free_port()
        async with ModbusTcpStation(station, port):
            yield lambda: driver(lambda: tcp_link("127.0.0.1", port, 1, timeout=1.0))
    else:
        pair = request.getfixturevalue("pty_pair")
        slave = RtuSlave(station, pair.master).start()
        try:
            yield lambda: driver(lambda: rtu_link(pair.device, 1, timeout=1.0, baudrate=19200))
        finally:
            await slave.stop()


async def modbus_conformance(transport: str, request: pytest.FixtureRequest) -> None:
    m = MEASURES
    station = ms.Station([m[0], ms.ExceptionReply(6), m[1], ms.Garbage(), m[2], ms.Drop(), m[3],
                          ms.Slow(1.5), m[4]])
    sink = RecordingSink()
    async with modbus_station(transport, station, request) as make_driver, running(make_driver(), sink):
        await until(station.done.is_set, "the station's script to finish")
    assert modbus_values(sink.events) == [(x.height_cm, x.weight_kg, x.bmi) for x in MEASURES]
    assert [e.reason for e in sink.errors] == ["modbus_exception", "invalid_value"]
    assert sink.recovered()
    assert station.acknowledged == station.published == [1, 2, 3, 4, 5, 6]


async def modbus_crash(transport: str, request: pytest.FixtureRequest) -> None:
    station = ms.Station(MEASURES[:2])
    crashing, sink = RecordingSink(crash_on=1), RecordingSink()
    async with modbus_station(transport, station, request) as make_driver:
        with pytest.raises(HubCrash):
            await asyncio.wait_for(make_driver().run(crashing), GUARD)
        assert station.acknowledged == []  # nothing acknowledged that was not stored
        async with running(make_driver(), sink):
            await until(station.done.is_set, "both measurements acknowledged")
    assert modbus_values(sink.events) == [(x.height_cm, x.weight_kg, x.bmi) for x in MEASURES[:2]]


# ---------------------------------------------------------------- MQTT

def mqtt_rig(request: pytest.FixtureRequest) -> tuple[int, str]:
    broker = request.getfixturevalue("mosquitto")
    return broker.port, f"dev-{uuid.uuid4().hex[:8]}"  # a fresh device (and session) per test


async def mqtt_conformance(transport: str, request: pytest.FixtureRequest) -> None:
    port, device_id = mqtt_rig(request)
    device = md.MqttDevice(device_id)
    topic = "clinic/{device_id}/measurement"
    first = [md.Publish(), md.Publish(), md.Duplicate(), md.Malformed(), md.NotJson(), md.WrongSchema(),
             md.UnknownCode(), md.WrongDevice(), md.Oversize(), md.Flood(20), md.Publish()]
    second = [md.Publish(), md.Duplicate(), md.Malformed(), md.Publish()]
    sink = RecordingSink()
    async with FaultProxy(port) as link:
        driver = MqttDriver(device_id, port=link.port, topic=topic, client_id=f"hub-{device_id}")
        async with running(driver, sink):
            await until(lambda: sink.states == [True], "the driver to subscribe")
            await md.publish_script(device, first, "127.0.0.1", port, topic)
            await until(lambda: len(sink.events) + len(sink.errors) == 23 + 6, "the first batch")
            await link.cut()
            await until(lambda: False in sink.states, "the driver to notice the cut")
            await md.publish_script(device, second, "127.0.0.1", port, topic)  # while it reconnects
            await until(lambda: len(sink.events) == len(device.valid) and len(sink.errors) == len(device.bad),
                        "everything after the reconnect")
    times = [e.device_time for e in sink.events]
    assert len(times) == len(set(times)) == len(device.valid) == 25
    assert [e.raw for e in sink.errors] == [b[:4096] for b in device.bad]
    assert [e.reason for e in sink.errors] == ["truncated", "malformed", "schema", "unknown_code", "schema",
                                               "overlong", "truncated"]
    assert sink.recovered() and link.connections >= 2


async def mqtt_crash(transport: str, request: pytest.FixtureRequest) -> None:
    port, device_id = mqtt_rig(request)
    device = md.MqttDevice(device_id)
    topic = "clinic/{device_id}/measurement"
    crashing, sink = RecordingSink(crash_on=1), RecordingSink()

    def driver() -> MqttDriver:
        return MqttDriver(device_id, port=port, topic=topic, client_id=f"hub-{device_id}")

    task = asyncio.create_task(driver().run(crashing))
    await until(lambda: crashing.states == [True], "the first driver to subscribe")
    await md.publish_script(device, [md.Publish(), md.Publish(), md.Publish()], "127.0.0.1", port, topic)
    with pytest.raises(HubCrash):
        await asyncio.wait_for(task, GUARD)
    async with running(driver(), sink):  # same client id: the broker still holds the unacknowledged messages
        await until(lambda: len(sink.events) == 3, "the three messages to be redelivered")
        await asyncio.sleep(0.2)  # a fourth (duplicate) delivery would show up here
    assert sorted(e.device_time or "" for e in sink.events) == [
        (md.BASE_TIME.replace(second=s)).isoformat() for s in (1, 2, 3)]


# ---------------------------------------------------------------- the suite

Scenario = Callable[[str, pytest.FixtureRequest], Awaitable[None]]
CONFORMANCE: dict[str, Scenario] = {"modbus-tcp": modbus_conformance, "modbus-rtu": modbus_conformance,
                                    "mqtt": mqtt_conformance}
CRASH: dict[str, Scenario] = {"modbus-tcp": modbus_crash, "modbus-rtu": modbus_crash, "mqtt": mqtt_crash}


@pytest.mark.parametrize("transport", sorted(CONFORMANCE))
async def test_valid_measurements_arrive_once_bad_frames_are_reported_and_the_driver_recovers(
        transport: str, request: pytest.FixtureRequest) -> None:
    await CONFORMANCE[transport](transport, request)


@pytest.mark.parametrize("transport", sorted(CRASH))
async def test_a_hub_crash_before_storing_loses_nothing_and_duplicates_nothing(
        transport: str, request: pytest.FixtureRequest) -> None:
    await CRASH[transport](transport, request)
