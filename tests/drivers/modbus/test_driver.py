"""The Modbus driver's choices against the TCP simulator: acknowledgement modes, repeated
errors, giving up, and configuration from hub.toml tables."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from pathlib import Path
from typing import Any

import pytest

from drivers.errors import ConfigError, TransportError
from drivers.modbus.driver import ModbusDriver, modbus_rtu, modbus_tcp
from drivers.modbus.example import EXAMPLE_CONFIG, EXAMPLE_MAP
from drivers.modbus.regmap import parse_register_map
from drivers.modbus.transport import tcp_link
from drivers.registry import codecs, driver_kinds
from firmware_sim import modbus_station as ms
from firmware_sim.modbus import ModbusTcpStation
from protocol.backoff import Backoff
from tests.support.fieldbus import RecordingSink, until
from tests.support.services import free_port
from tests.support.waiting import HANG_S


async def run_until_done(station: ms.Station, driver_for: object) -> RecordingSink:
    sink = RecordingSink()
    port = free_port()
    async with ModbusTcpStation(station, port):
        driver = driver_for(port)  # type: ignore[operator]
        task = asyncio.create_task(driver.run(sink))
        try:
            await until(station.done.is_set, "the script to finish")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return sink


async def test_clear_acknowledgement_without_a_sequence_register() -> None:
    config = copy.deepcopy(EXAMPLE_CONFIG)
    config.update(ready={"address": 0, "ack": "clear"}, sequence=None)
    regmap = parse_register_map(config)
    station = ms.Station([ms.Measure(160.0, 55.5, 21.7), ms.Measure(161.0, 56.5, 21.8)])
    sink = await run_until_done(station, lambda port: ModbusDriver(
        "hw", regmap, lambda: tcp_link("127.0.0.1", port, 1, 1.0), poll_interval=0.02))
    assert [e.observations[0].value for e in sink.events] == [160.0, 161.0]
    assert station.acknowledged == [1, 2]


async def test_a_station_busy_for_many_polls_is_reported_once() -> None:
    station = ms.Station([ms.ExceptionReply(code=6, count=8), ms.Measure(160.0, 55.5, 21.7)])
    sink = await run_until_done(station, lambda port: ModbusDriver(
        "hw", EXAMPLE_MAP, lambda: tcp_link("127.0.0.1", port, 1, 1.0), poll_interval=0.01))
    assert [(e.reason, getattr(e, "code", None)) for e in sink.errors] == [("modbus_exception", 6)]
    assert len(sink.events) == 1 and station.requests >= 8


async def test_the_driver_gives_up_after_max_failures_when_configured() -> None:
    port = free_port()  # nothing listens here
    driver = ModbusDriver("hw", EXAMPLE_MAP, lambda: tcp_link("127.0.0.1", port, 1, 0.5),
                          backoff=Backoff(initial=0.01, maximum=0.01), max_failures=3)
    sink = RecordingSink()
    with pytest.raises(TransportError, match="cannot connect"):
        await asyncio.wait_for(driver.run(sink), HANG_S)
    assert sink.states == [False, False, False]


def test_factories_read_hub_toml_tables() -> None:
    tcp = modbus_tcp("hw-1", {**EXAMPLE_CONFIG, "host": "10.0.0.5", "poll_interval": 1.5})
    assert tcp.device_id == "hw-1" and tcp.poll_interval == 1.5 and tcp.regmap == EXAMPLE_MAP
    rtu = modbus_rtu("hw-2", {**EXAMPLE_CONFIG, "address": "/dev/ttyUSB0", "baudrate": 19200, "parity": "E"})
    assert rtu.device_id == "hw-2"
    # the cloud inventory's form: the unit id as an integer port
    assert modbus_rtu("hw-3", {**EXAMPLE_CONFIG, "address": "/dev/ttyAMA0", "port": 3}).device_id == "hw-3"
    assert {"modbus-tcp", "modbus-rtu", "mqtt"} <= set(driver_kinds())
    assert {"modbus-registers", "mqtt-json"} <= set(codecs())


@pytest.mark.parametrize(("factory", "config", "key"), [
    (modbus_tcp, {}, "host"),
    (modbus_tcp, {"host": "10.0.0.5", "port": 70000}, "port"),
    (modbus_tcp, {"host": "10.0.0.5", "unit_id": 300}, "unit_id"),
    (modbus_rtu, {}, "address"),
    (modbus_rtu, {"port": "/dev/ttyUSB0"}, "port"),  # the old documented form: named, with the fix
    (modbus_rtu, {"address": "/dev/ttyUSB0", "parity": "X"}, "parity"),
    (modbus_rtu, {"address": "/dev/ttyUSB0", "port": 3, "unit_id": 4}, "port"),
])
def test_factory_errors_name_device_and_key(factory: object, config: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^device 'hw-1'\.{key}: .*fix"):
        factory("hw-1", {**EXAMPLE_CONFIG, **config})  # type: ignore[operator]


@pytest.mark.parametrize(("factory", "config", "message"), [
    (modbus_tcp, {"host": "10.0.0.5", "port": "502"},
     "device 'hw-1'.port: '502' is not an integer in 1..65535; fix: write port = 502"),
    (modbus_tcp, {"host": "10.0.0.5", "unit_id": 300},
     "device 'hw-1'.unit_id: 300 is not an integer in 0..247; fix: write unit_id = 1"),
    (modbus_rtu, {"address": "/dev/ttyUSB0", "baudrate": 50},
     "device 'hw-1'.baudrate: 50 is not an integer in 300..921600; fix: write baudrate = 9600"),
    (modbus_rtu, {"address": "/dev/ttyUSB0", "timeout": "1s"},
     "device 'hw-1'.timeout: '1s' is not a number > 0 and <= 3600; fix: write timeout = 1.0"),
    (modbus_rtu, {"port": "/dev/ttyUSB0"},
     "device 'hw-1'.port: '/dev/ttyUSB0' is not an integer in 0..247; "
     "fix: remove it, write the serial path as address and the unit id as unit_id"),
    (modbus_rtu, {"address": "/dev/ttyUSB0", "parity": "X"}, "device 'hw-1'.parity: 'X' is not allowed; "
                                                             "fix: use one of N, E, O"),
])
def test_a_wrong_type_or_range_says_what_the_key_takes(factory: object, config: dict[str, object],
                                                      message: str) -> None:
    with pytest.raises(ConfigError) as err:
        factory("hw-1", {**EXAMPLE_CONFIG, **config})  # type: ignore[operator]
    assert str(err.value) == message


def test_an_rtu_station_in_hub_toml_is_accepted_by_the_hub(tmp_path: Path) -> None:
    """The serial path is ``address`` (hub.toml's ``port`` is a number): the hub once refused every RTU station."""
    from edge import config

    (tmp_path / "hub.toml").write_text(
        '[[stations]]\nid = "room-1"\n[[stations.devices]]\nid = "hw-1"\ndriver = "modbus-rtu"\n'
        'address = "/dev/ttyUSB0"\nbaudrate = 19200\nreading_kind = "height_weight"\n'
        'ready = { address = 0, ack = "echo", ack_address = 2 }\nsequence = { address = 1, type = "u16" }\n'
        'registers = [{ address = 3, type = "u16", scale = 0.1, unit = "cm", code = "8302-2" }]\n',
        encoding="utf-8")
    cfg = config.load(tmp_path / "hub.toml")
    device = cfg.stations[0].devices[0]
    assert modbus_rtu(device.id, device.options).device_id == "hw-1"


async def test_a_refused_acknowledgement_is_reported_once_and_the_measurement_emitted_once() -> None:
    config = copy.deepcopy(EXAMPLE_CONFIG)
    config["ready"] = {"address": 0, "ack": "echo", "ack_address": 40}  # the station has no register 40
    regmap = parse_register_map(config)
    station = ms.Station([ms.Measure(160.0, 55.5, 21.7)])
    sink = RecordingSink()
    port = free_port()
    async with ModbusTcpStation(station, port):
        driver = ModbusDriver("hw", regmap, lambda: tcp_link("127.0.0.1", port, 1, 1.0), poll_interval=0.01)
        task = asyncio.create_task(driver.run(sink))
        try:
            await until(lambda: station.requests > 20, "many polls")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    assert len(sink.events) == 1
    assert [(e.reason, getattr(e, "code", None)) for e in sink.errors] == [("modbus_exception", 2)]
    assert "write register 40" in str(sink.errors[0])


async def test_a_new_driver_marks_a_measurement_still_on_show_as_a_repeat_with_its_sequence() -> None:
    """What a restarted hub sees: the measurement it may have stored, not yet acknowledged."""
    station = ms.Station([ms.Measure(160.0, 55.5, 21.7), ms.Measure(161.0, 56.5, 21.8)])
    sink = await run_until_done(station, lambda port: ModbusDriver(
        "hw", EXAMPLE_MAP, lambda: tcp_link("127.0.0.1", port, 1, 1.0), poll_interval=0.02))
    assert [(e.repeats, e.identity) for e in sink.events] == [(True, "seq=1"), (False, "seq=2")]


async def test_without_a_sequence_only_an_unacknowledged_measurement_is_uncertain() -> None:
    config = copy.deepcopy(EXAMPLE_CONFIG)
    config.update(ready={"address": 0, "ack": "clear"}, sequence=None)
    regmap = parse_register_map(config)
    station = ms.Station([ms.Measure(160.0, 55.5, 21.7), ms.Measure(160.0, 55.5, 21.7)])
    sink = await run_until_done(station, lambda port: ModbusDriver(
        "hw", regmap, lambda: tcp_link("127.0.0.1", port, 1, 1.0), poll_interval=0.02))
    assert [(e.repeats, e.identity) for e in sink.events] == [(True, ""), (False, "")]

async def test_a_modbus_rtu_device_configured_from_its_table_reads_a_station_over_a_serial_line(pty_pair: Any) -> None:
    """Issue 17 finding 2: the hub.toml table (serial path in ``address``) builds a driver that works."""
    from firmware_sim.modbus_rtu import RtuSlave

    measures = [ms.Measure(165.5, 66.4, 24.2), ms.Measure(170.0, 70.2, 24.3)]
    station = ms.Station(list(measures))
    slave = RtuSlave(station, pty_pair.master).start()
    driver = modbus_rtu("hw-1", {**EXAMPLE_CONFIG, "address": pty_pair.device, "baudrate": 19200, "unit_id": 1,
                                 "poll_interval": 0.02})
    sink = RecordingSink()
    task = asyncio.create_task(driver.run(sink))
    try:
        await until(station.done.is_set, "both measurements acknowledged")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await slave.stop()
    assert [tuple(o.value for o in e.observations) for e in sink.events] == [
        (m.height_cm, m.weight_kg, m.bmi) for m in measures]
