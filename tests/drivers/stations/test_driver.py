"""Serial station driver: configuration, the poll repeat filter, TCP serial servers."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import random
import socket
from typing import Any

import pytest

from drivers import registry
from drivers.base import Measurement
from drivers.errors import ConfigError, FrameError, TransportError
from drivers.links import link_spec, open_link
from drivers.stations.common import Signal, observation
from drivers.stations.driver import SerialStation
from firmware_sim.faults import FaultPlan
from firmware_sim.patients import make_patient
from firmware_sim.serial_host import TcpEndpoint, serve
from firmware_sim.station_sim import StationSim, Visit
from tests.conformance.serial_scenarios import RecordingSink
from tests.support.waiting import HANG_S


def reading(weight: float) -> Measurement:
    return Measurement(kind="weight", observations=(observation("29463-7", weight, "kg"),))


@pytest.mark.parametrize(("config", "message"), [
    ({"dialect": "a5"}, "address"),
    ({"address": "/dev/x", "dialect": "qr"}, "a5, tanita-csv, detecto, accutorr"),
    ({"address": "/dev/x"}, "dialect"),
    ({"address": "/dev/x", "dialect": "accutorr", "mode": "push"}, "poll"),
    ({"address": "/dev/x", "dialect": "a5", "poll_interval": 0}, "poll_interval"),
    ({"address": "/dev/x", "dialect": "a5", "fn_both": "zz"}, "fn_both"),
    ({"address": "/dev/x", "dialect": "a5", "fn_both": "0x100"}, "fn_both"),
    ({"address": "/dev/x", "dialect": "a5", "device_id": 300}, "device_id"),
    ({"address": "/dev/x", "dialect": "tanita-csv", "checksum": "crc"}, "checksum"),
])
def test_configuration_errors_say_what_to_fix(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        registry.driver_kinds()["serial-station"]("st-1", config)


@pytest.mark.parametrize(("config", "message"), [
    ({"address": "/dev/x", "dialect": "a5", "fn_both": "zz"},
     """device 'st-1'.fn_both: 'zz' is not an integer in 0..255; fix: write fn_both = 0x37 (a byte 0..255; """
     """the text "0x37" works too)"""),
    ({"address": "/dev/x", "dialect": "a5", "device_id": 256},
     """device 'st-1'.device_id: 256 is not an integer in 0..255; fix: write device_id = 0x03 (a byte 0..255; """
     """the text "0x03" works too)"""),
    ({"address": "/dev/x", "dialect": "tanita-csv", "date_order": 1},
     "device 'st-1'.date_order: 1 is not a text; fix: write date_order = \"dmy\""),
    ({"address": "/dev/x", "dialect": "tanita-csv", "date_order": "dym"},
     "device 'st-1'.date_order: 'dym' is not allowed; fix: use one of dmy, mdy, ymd"),
    ({"address": "/dev/x", "dialect": "tanita-csv", "keys": {"weight": "Weight"}},
     """device 'st-1'.keys.weight: 'Weight' is not valid; fix: write the field's key as it appears in the line: """
     """two characters, a letter first (e.g. "Wk")"""),
    ({"address": "/dev/x", "dialect": "tanita-csv", "keys": {"mass": "Wk"}},
     "device 'st-1'.keys.mass: unknown key; fix: remove it or use one of bmi, date, fat, height, time, weight"),
    ({"address": "/dev/x", "dialect": "detecto", "poll_request": 5},
     """device 'st-1'.poll_request: 5 is not a text; fix: write poll_request = "W\\r" (text; \\r, \\n and """
     """\\xNN escapes)"""),
    ({"address": "/dev/x", "dialect": "detecto", "poll_request": "\\x"},
     """device 'st-1'.poll_request: '\\\\x' is not a request ('unicodeescape' codec can't decode bytes in position """
     """0-1: truncated \\xXX escape); fix: write poll_request = "W\\r" (text; \\r, \\n and \\xNN escapes)"""),
    ({"address": "/dev/x"}, """device 'st-1'.dialect: missing; fix: add dialect = "a5" (one of a5, tanita-csv, """
                            """detecto, accutorr)"""),
    ({"address": "/dev/x", "dialect": "accutorr", "mode": "push"},
     "device 'st-1'.mode: 'push' is not supported by dialect accutorr; fix: use mode = \"poll\""),
    ({"address": "/dev/x", "dialect": "a5", "baudrate": "9600"},
     "device 'st-1'.baudrate: '9600' is not an integer >= 1; fix: write baudrate = 9600"),
    ({"address": "/dev/x", "dialect": "a5", "idle_flush": -1},
     "device 'st-1'.idle_flush: -1 is not a number > 0 and <= 3600; fix: write idle_flush = 0.3"),
])
def test_a_wrong_type_or_range_says_what_the_key_takes(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        registry.driver_kinds()["serial-station"]("st-1", config)
    assert str(err.value) == message


def test_factories_and_defaults() -> None:
    bp = registry.driver_kinds()["serial-bp"]("bp-1", {"address": "/dev/ttyUSB1"})
    assert isinstance(bp, SerialStation) and (bp.dialect.name, bp.mode, bp.request) == ("accutorr", "poll", b"P")
    a5 = SerialStation("st", {"address": "/dev/x", "dialect": "a5", "mode": "poll", "fn_both": "0x40", "device_id": 1})
    assert a5.request == bytes.fromhex("A55A030140") + bytes([(sum(bytes.fromhex("A55A030140")) + 1) & 0xFF])
    line = SerialStation("st", {"address": "/dev/x", "dialect": "detecto", "poll_request": "W\\r"})
    assert line.request == b"W\r"
    a5_int = SerialStation("st", {"address": "/dev/x", "dialect": "a5", "mode": "poll", "fn_both": 0x40,
                                  "device_id": 1})
    assert a5_int.request == a5.request
    tanita = SerialStation("st", {"address": "/dev/x", "dialect": "tanita-csv", "keys": {"weight": "WT"},
                                  "checksum": "ignore"})
    assert tanita.request == b"\x05"
    [m] = tanita.decoder.feed_items(b"{0,16,WT,55.4,Hm,158.0\r\n")
    assert isinstance(m, Measurement) and m.observations[-1].value == 55.4


async def test_poll_mode_reports_a_standing_person_once() -> None:
    station = SerialStation("st", {"address": "/dev/x", "dialect": "a5", "mode": "poll"})
    sink = RecordingSink()
    bad = FrameError("x")
    await station.handle([reading(60.0), reading(60.0), bad, reading(60.0), Signal("empty"), reading(60.0),
                          reading(61.0), Signal("link")], sink)
    assert [m.observations[0].value for m in sink.events] == [60.0, 60.0, 61.0]  # type: ignore[union-attr]
    assert sink.errors == [bad]


async def test_push_mode_reports_every_frame() -> None:
    station = SerialStation("st", {"address": "/dev/x", "dialect": "a5"})
    sink = RecordingSink()
    await station.handle([reading(60.0), reading(60.0)], sink)
    assert len(sink.events) == 2


async def test_station_behind_a_tcp_serial_server() -> None:
    endpoint = await TcpEndpoint().start()
    people = [make_patient(random.Random(i), "child", today=dt.date(2025, 3, 1)) for i in range(3)]
    sim = StationSim("tanita-csv", "poll", iter([Visit(p, 2, 1) for p in people]), FaultPlan())
    stop = asyncio.Event()
    server = asyncio.create_task(serve(sim, endpoint, sim.plan, stop))
    host, _, port = endpoint.device.removeprefix("tcp://").rpartition(":")
    station = SerialStation("st", {"transport": "tcp", "address": host, "port": int(port), "dialect": "tanita-csv",
                                   "mode": "poll", "poll_interval": 0.03})
    sink = RecordingSink()
    runner = asyncio.create_task(station.run(sink))
    try:
        async with asyncio.timeout(HANG_S):
            while len(sink.events) < 3:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sink.changed.wait(), 0.05)
                sink.changed.clear()
    finally:
        runner.cancel()
        stop.set()
        server.cancel()
        await asyncio.gather(runner, server, return_exceptions=True)
        endpoint.close()
    assert [m.observations[-1].value for m in sink.events] == [p.weight_kg for p in people]  # type: ignore[union-attr]


@pytest.mark.parametrize(("config", "spec"), [
    ({"address": "/dev/serial/by-id/usb-FTDI"}, "/dev/serial/by-id/usb-FTDI"),
    ({"transport": "serial", "address": "/dev/ttyUSB0", "port": 4001}, "/dev/ttyUSB0"),  # port: a TCP server's
    ({"transport": "tcp", "address": "10.0.0.7", "port": 4001}, "tcp://10.0.0.7:4001"),
])
def test_where_the_device_is(config: dict[str, Any], spec: str) -> None:
    assert str(link_spec("st-1", config)) == spec


@pytest.mark.parametrize(("config", "message"), [
    ({}, """device 'st-1'.address: missing; fix: add address = "/dev/ttyUSB0" (the serial port; """
         """with transport = "tcp" the serial server's host)"""),
    ({"address": 7}, """device 'st-1'.address: 7 is not a text; fix: add address = "/dev/ttyUSB0" (the serial """
                     """port; with transport = "tcp" the serial server's host)"""),
    ({"address": "/dev/x", "transport": "usb"}, "device 'st-1'.transport: 'usb' is not allowed; "
                                                "fix: use one of serial, tcp"),
    ({"port": "/dev/ttyUSB0"}, "device 'st-1'.port: '/dev/ttyUSB0' is not an integer in 1..65535; fix: "
                               "write port = 4001 (the TCP port of a serial server); a serial port goes in address"),
    ({"transport": "tcp", "address": "10.0.0.7", "port": 0},
     "device 'st-1'.port: 0 is not an integer in 1..65535; "
     "fix: write port = 4001 (the TCP port of a serial server); a serial port goes in address"),
    ({"transport": "tcp", "address": "10.0.0.7"},
     "device 'st-1'.port: missing (a TCP serial server needs its port); fix: add port = 4001"),
    ({"address": "tcp://10.0.0.7:4001"}, "device 'st-1'.address: 'tcp://10.0.0.7:4001' is not a serial port; "
                                         'fix: for a TCP serial server write transport = "tcp", address = "HOST", '
                                         "port = PORT"),
])
def test_where_the_device_is_names_the_key_and_the_fix(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        link_spec("st-1", config)
    assert str(err.value) == message


async def test_a_tcp_serial_server_that_is_not_there_is_a_transport_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportError, match=f"tcp://127.0.0.1:{port}"):
        await open_link(link_spec("st-1", {"transport": "tcp", "address": "127.0.0.1", "port": port}), 9600)


def test_factory_returns_the_same_object_for_an_unchanged_device() -> None:
    make = registry.driver_kinds()["serial-station"]
    config = {"address": "/dev/ttyS9", "dialect": "a5", "mode": "poll"}
    first = make("st-9", config)
    assert make("st-9", dict(config)) is first  # a restart keeps the repeat filter
    assert make("st-9", {**config, "poll_interval": 2}) is not first  # new configuration, new object
    assert make("st-8", config) is not first


async def test_poll_mode_marks_what_a_new_driver_cannot_place_as_a_repeat() -> None:
    """After a hub restart the first answer may be the last person's: the hub decides (edge.store.repeats)."""
    station = SerialStation("st", {"address": "/dev/x", "dialect": "a5", "mode": "poll"})
    sink = RecordingSink()
    await station.handle([reading(60.0), reading(60.0), reading(61.0), Signal("empty"), reading(61.0)], sink)
    assert [m.repeats for m in sink.events] == [True, False, False]  # type: ignore[union-attr]
    fresh = SerialStation("st2", {"address": "/dev/x", "dialect": "a5", "mode": "poll"})
    await fresh.handle([Signal("empty"), reading(62.0)], sink)  # empty first: whatever follows is new
    pushed = SerialStation("st3", {"address": "/dev/x", "dialect": "a5"})
    await pushed.handle([reading(63.0)], sink)  # push mode: the device sends each measurement once
    assert [m.repeats for m in sink.events[3:]] == [False, False]  # type: ignore[union-attr]


def test_the_accutorr_reports_how_old_its_measurement_is() -> None:
    from drivers.stations.accutorr import AccutorrDecoder

    [m] = AccutorrDecoder().feed(b"P:--,85,120, 45, 80,000,000,000, 7\r\n")
    assert isinstance(m, Measurement) and m.age_s == 7 * 60
    [m] = AccutorrDecoder().feed(b"P:--,85,120, 45, 80,000,000,000,99999999\r\n")
    assert isinstance(m, Measurement) and m.age_s is not None and m.age_s <= 366 * 86_400
