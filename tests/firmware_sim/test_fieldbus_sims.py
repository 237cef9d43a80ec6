"""The fieldbus simulators on their own: RTU framing, the station handshake, the CLI scripts."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import struct

import pytest

from firmware_sim import modbus_station as ms
from firmware_sim.modbus_rtu import RtuSlave, crc16, frame, request_length
from firmware_sim.mqtt_device import MqttDevice, Publish, WrongSchema
from firmware_sim.sim_fieldbus import modbus_script, mqtt_script
from mchub.cli import build_parser
from tests.support.pty import PtyPair
from tests.support.waiting import HANG_S


@pytest.mark.parametrize(("body", "crc"), [
    # "MODBUS over serial line" V1.02 and the Modicon guide's classic example: read 3 holding
    # registers from 108 (0x6B) of slave 17 -> 11 03 00 6B 00 03 76 87
    ("1103006B0003", "7687"),
    ("010300000001", "840A"),  # the most quoted RTU request (e.g. simplymodbus.ca)
    ("01030000000A", "C5CD"),
])
def test_crc16_against_published_frames(body: str, crc: str) -> None:
    assert frame(bytes.fromhex(body)).hex().upper() == body + crc
    assert struct.pack("<H", crc16(bytes.fromhex(body))).hex().upper() == crc


def test_request_lengths_by_function() -> None:
    assert request_length(b"\x01") is None
    assert request_length(b"\x01\x03") == 8
    assert request_length(b"\x01\x10\x00\x00\x00\x02") is None
    assert request_length(b"\x01\x10\x00\x00\x00\x02\x04") == 13
    assert request_length(b"\x01\x2b") == 0


async def test_rtu_slave_skips_garbage_and_bad_crc_then_answers(pty_pair: PtyPair) -> None:
    station = ms.Station([ms.Measure(165.5, 66.4, 24.4)])
    slave = RtuSlave(station, pty_pair.master).start()
    fd = os.open(pty_pair.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        request = frame(bytes.fromhex("010300000007"))
        bad = request[:-1] + bytes([request[-1] ^ 0xFF])
        other_unit = frame(bytes.fromhex("020300000007"))
        os.write(fd, b"\x00\xff" + bad + other_unit + request)
        answer = b""

        async def read_answer() -> None:
            nonlocal answer
            for _ in itertools.count():
                if len(answer) >= 19:
                    return
                await asyncio.sleep(0.01)
                with contextlib.suppress(BlockingIOError):
                    answer += os.read(fd, 64)

        await asyncio.wait_for(read_answer(), HANG_S)
    finally:
        os.close(fd)
        await slave.stop()
    assert answer == frame(bytes.fromhex("01030E" "0001 0001 0000 0677 4284CCCD 00F4".replace(" ", "")))
    assert slave.bad_crc >= 1


def test_station_handshake_publishes_the_next_measurement_only_after_the_ack() -> None:
    station = ms.Station([ms.Measure(165.5, 66.4, 24.4), ms.Measure(170.0, 70.0, 24.2)])
    assert station.read(0, 7) == [1, 1, 0, 1655, 0x4284, 0xCCCD, 244]
    assert station.write(2, [7]) is None and station.read(0, 2) == [1, 1]  # wrong sequence: no ack
    assert station.write(2, [1]) is None and station.read(0, 2) == [1, 2]  # acked: the next one
    assert station.write(0, [0]) is None and station.read(0, 1) == [0]  # "clear" ack of the last
    assert station.acknowledged == [1, 2] and station.done.is_set()
    assert station.read(15, 2) == 2 and station.write(16, [1]) == 2  # outside the bank


def test_mqtt_device_numbers_valid_messages_and_keeps_bad_ones() -> None:
    device = MqttDevice("bp-9")
    [first] = device.payloads(Publish())
    [bad] = device.payloads(WrongSchema())
    assert b'"seq": 1' in first and b'"device_id": "bp-9"' in first
    assert device.valid == [1] and device.bad == [bad]


def test_cli_scripts_spread_faults_between_measurements() -> None:
    steps = modbus_script(3, ["busy", "drop"])
    assert [type(s).__name__ for s in steps] == ["Measure", "ExceptionReply", "Measure", "Drop", "Measure",
                                                 "ExceptionReply"]
    assert len(mqtt_script(2, [])) == 2
    args = build_parser().parse_args(["sim", "mqtt", "--faults", "malformed,flood", "--count", "3"])
    assert args.faults == ["malformed", "flood"] and args.count == 3
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim", "modbus", "--faults", "fire"])
