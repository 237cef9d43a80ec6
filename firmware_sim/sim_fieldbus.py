"""``mchub sim modbus`` and ``mchub sim mqtt``: the fieldbus simulators from the command line.

``register_sims(subparsers)`` adds both subcommands to ``mchub sim``; the async
``run_modbus_tcp``/``run_modbus_rtu``/``run_mqtt_device`` are for ``mchub demo`` and tests.
Heavy imports (pymodbus, aiomqtt) happen inside the functions so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import pty
import tty
from typing import Any

from firmware_sim import modbus_station as ms
from firmware_sim import mqtt_device as md

log = logging.getLogger(__name__)

MODBUS_FAULTS = {"busy": ms.ExceptionReply(6), "drop": ms.Drop(), "slow": ms.Slow(2.0), "garbage": ms.Garbage()}
MQTT_FAULTS = {"duplicate": md.Duplicate(), "malformed": md.Malformed(), "notjson": md.NotJson(),
               "schema": md.WrongSchema(), "unknown-code": md.UnknownCode(), "wrong-device": md.WrongDevice(),
               "oversize": md.Oversize(), "flood": md.Flood(50)}


def modbus_script(count: int, faults: list[str]) -> list[ms.Step]:
    """``count`` plausible measurements with the named faults spread between them."""
    steps: list[ms.Step] = []
    for i in range(count):
        height = 150.0 + (i * 7) % 40
        weight = round(45.0 + (i * 3.3) % 50, 1)
        steps.append(ms.Measure(height, weight, round(weight / (height / 100) ** 2, 1)))
        if faults:
            steps.append(MODBUS_FAULTS[faults[i % len(faults)]])
    return steps


def mqtt_script(count: int, faults: list[str]) -> list[md.Step]:
    """``count`` valid blood-pressure messages with the named faults spread between them."""
    steps: list[md.Step] = []
    for i in range(count):
        steps.append(md.Publish((("8480-6", 110 + i % 30, "mmHg"), ("8462-4", 70 + i % 20, "mmHg"),
                                  ("8867-4", 60 + i % 25, "/min"))))
        if faults:
            steps.append(MQTT_FAULTS[faults[i % len(faults)]])
    return steps


async def run_modbus_tcp(port: int, host: str = "127.0.0.1", unit_id: int = 1, count: int = 10,
                         faults: list[str] | None = None, forever: bool = True) -> ms.Station:
    """Serve the example station on TCP until cancelled (or, with ``forever=False``, until the script ends)."""
    from firmware_sim.modbus import ModbusTcpStation

    station = ms.Station(modbus_script(count, faults or []))
    async with ModbusTcpStation(station, port, host, unit_id):
        print(f"modbus station listening on {host}:{port} unit {unit_id} (registers: docs/fieldbus.md §1)",
              flush=True)
        await (asyncio.Event().wait() if forever else station.done.wait())
    return station


async def run_modbus_rtu(unit_id: int = 1, count: int = 10, faults: list[str] | None = None,
                         forever: bool = True) -> ms.Station:
    """Serve the example station as an RTU slave on a new pseudo-terminal; prints its device path."""
    from firmware_sim.modbus_rtu import RtuSlave

    master, slave = pty.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    station = ms.Station(modbus_script(count, faults or []))
    rtu = RtuSlave(station, master, unit_id).start()
    print(f"modbus RTU station on {os.ttyname(slave)} unit {unit_id} (configure port = that path)", flush=True)
    try:
        await (asyncio.Event().wait() if forever else station.done.wait())
    finally:
        await rtu.stop()
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)
    return station


async def run_mqtt_device(host: str, port: int, topic: str = "clinic/{device_id}/measurement",
                          device_id: str = "bp-3", count: int = 10, faults: list[str] | None = None,
                          interval: float = 1.0) -> md.MqttDevice:
    """Publish ``count`` measurements (plus faults) to the broker, one step every ``interval`` seconds."""
    device = md.MqttDevice(device_id)
    await md.publish_script(device, mqtt_script(count, faults or []), host, port, topic, interval)
    print(f"published {len(device.valid)} valid and {len(device.bad)} bad messages", flush=True)
    return device


def _faults(text: str, known: dict[str, Any]) -> list[str]:
    names = [f for f in text.split(",") if f]
    for name in names:
        if name not in known:
            raise argparse.ArgumentTypeError(f"unknown fault {name!r}; choose from {', '.join(known)}")
    return names


def register_sims(subparsers: Any) -> None:
    """Add ``modbus`` and ``mqtt`` to the ``mchub sim`` subcommands."""
    p = subparsers.add_parser(
        "modbus", help="Modbus 身高体重秤 / a Modbus height/weight station (TCP, or RTU on a pseudo-terminal)",
        description="Modbus 身高体重秤 / Serve the example station of docs/fieldbus.md §1 with scripted "
                    "measurements and faults.",
        epilog="example: mchub sim modbus --port 5020 --count 5 --faults busy,drop\n"
               "         mchub sim modbus --rtu        (prints the /dev/pts/N path to configure)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="监听地址 / address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5020, help="TCP 端口 / TCP port (default 5020)")
    p.add_argument("--rtu", action="store_true", help="在新的伪终端上提供 Modbus RTU（而非 TCP） / "
                                                      "serve Modbus RTU on a new pseudo-terminal instead of TCP")
    p.add_argument("--unit", type=int, default=1, help="Modbus 从站地址 / Modbus unit id (default 1)")
    p.add_argument("--count", type=int, default=10, help="发布的测量次数 / measurements to publish (default 10)")
    p.add_argument("--faults", default="", type=lambda t: _faults(t, MODBUS_FAULTS),
                   help="测量之间插入的故障（逗号分隔）/ "
                        f"comma-separated faults between measurements: {', '.join(MODBUS_FAULTS)}")
    p.set_defaults(func=_run_modbus)

    q = subparsers.add_parser(
        "mqtt", help="MQTT 设备 / an MQTT device publishing JSON measurements to a broker",
        description="MQTT 测量设备 / Publish JSON measurements (docs/fieldbus.md §2) at QoS 1, with optional faults.",
        epilog="example: mchub sim mqtt --port 1883 --device bp-3 --count 5 --faults malformed,duplicate",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("--host", default="127.0.0.1", help="代理主机 / broker host (default 127.0.0.1)")
    q.add_argument("--port", type=int, default=1883, help="代理端口 / broker port (default 1883)")
    q.add_argument("--topic", default="clinic/{device_id}/measurement", help="主题 / topic ({device_id} is filled in)")
    q.add_argument("--device", default="bp-3", help="主题和消息中的设备编号 / "
                                                    "the device id in topic and payload (default bp-3)")
    q.add_argument("--count", type=int, default=10, help="发布的测量次数 / measurements to publish (default 10)")
    q.add_argument("--interval", type=float, default=1.0, help="两条消息之间的秒数 / "
                                                               "seconds between messages (default 1)")
    q.add_argument("--faults", default="", type=lambda t: _faults(t, MQTT_FAULTS),
                   help="测量之间插入的故障（逗号分隔）/ "
                        f"comma-separated faults between measurements: {', '.join(MQTT_FAULTS)}")
    q.set_defaults(func=_run_mqtt)


def _run_modbus(args: argparse.Namespace) -> int:
    if args.rtu:
        coro = run_modbus_rtu(args.unit, args.count, args.faults)
    else:
        coro = run_modbus_tcp(args.port, args.host, args.unit, args.count, args.faults)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(coro)
    return 0


def _run_mqtt(args: argparse.Namespace) -> int:
    import aiomqtt

    try:
        asyncio.run(run_mqtt_device(args.host, args.port, args.topic, args.device, args.count, args.faults,
                                    args.interval))
    except aiomqtt.MqttError as exc:
        print(f"cannot publish to {args.host}:{args.port}: {exc} (is the broker running?)")
        return 1
    return 0
