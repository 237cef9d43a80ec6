"""``mchub sim idcard|station|bp``: a simulated serial device on a pty or a TCP port."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
from collections.abc import Iterator

from firmware_sim.faults import FaultPlan, parse_faults
from firmware_sim.idcard_sim import CardVisit, IdCardReaderSim
from firmware_sim.patients import Patient, patients
from firmware_sim.serial_host import Endpoint, PtyEndpoint, TcpEndpoint, serve
from firmware_sim.station_sim import StationSim, Visit

EPILOG = """\
The simulator prints the device path to put in hub.toml and runs until Ctrl-C
(or until --count patients have been through). Examples:

  mchub sim idcard                                  # pty, prints e.g. /dev/pts/7
  mchub sim idcard --link /tmp/mchub-idcard         # stable path across simulated disconnects
  mchub sim station --dialect a5 --mode poll --tcp 7001
  mchub sim station --dialect detecto --rate 6 --faults garbage=0.1,truncate=0.05
  mchub sim bp --patients pregnant=1,adult=3 --faults nan,slow

Faults: garbage, bad_checksum, truncate, disconnect, out_of_range, nan, slow
(NAME=RATE per frame, a bare NAME means 5 %).
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    where = p.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="在新的伪终端上提供服务（默认） / "
                                                          "serve on a new pseudo-terminal (default)")
    where.add_argument("--tcp", type=int, metavar="PORT", help="作为 TCP 串口服务器监听端口 / "
                                                               "serve as a TCP serial server on PORT (0: any)")
    p.add_argument("--host", default="127.0.0.1", help="--tcp 的监听地址 / address for --tcp (default 127.0.0.1)")
    p.add_argument("--link", metavar="PATH", help="同时以此符号链接发布伪终端 / "
                                                  "also publish the pty as this symlink (kept across disconnects)")
    p.add_argument("--patients", default="adult=6,child=2,pregnant=2", metavar="MIX",
                   help="患者人群及比例 / patient groups and weights, e.g. adult=3,child=1,pregnant=1")
    p.add_argument("--count", type=int, default=0, help="模拟多少位患者后停止（0：一直运行） / "
                                                        "stop after this many patients (0: run forever)")
    p.add_argument("--seed", type=int, default=0, help="随机种子：相同种子重放相同患者 / "
                                                       "random seed: the same seed replays the same patients")
    p.add_argument("--rate", type=float, default=6.0, help="每分钟患者数 / patients per minute (default 6)")
    p.add_argument("--faults", default="", metavar="SPEC", help="故障比例 / fault rates, e.g. garbage=0.1,slow")


def register_idcard(p: argparse.ArgumentParser) -> None:
    """``mchub sim idcard``."""
    _common(p)
    p.add_argument("--fingerprint", action="store_true", help="应答 30 10 时附带指纹数据 / "
                                                              "answer 30 10 with a fingerprint block")
    p.set_defaults(func=lambda a: _run(a, "idcard"))


def register_station(p: argparse.ArgumentParser) -> None:
    """``mchub sim station``."""
    _common(p)
    p.add_argument("--dialect", default="a5", choices=["a5", "tanita-csv", "detecto"],
                   help="通信格式 / wire format (hub.toml: dialect = ...)")
    p.add_argument("--mode", default="push", choices=["push", "poll"],
                   help="推送或轮询 / push: send when a measurement completes; poll: answer the hub's requests")
    p.set_defaults(func=lambda a: _run(a, "station"))


def register_bp(p: argparse.ArgumentParser) -> None:
    """``mchub sim bp``."""
    _common(p)
    p.add_argument("--dialect", default="accutorr", choices=["accutorr"], help="通信格式 / wire format")
    p.set_defaults(func=lambda a: _run(a, "bp"), mode="poll")


def _people(args: argparse.Namespace) -> Iterator[Patient]:
    stream: Iterator[Patient] = patients(args.seed, args.patients)
    return itertools.islice(stream, args.count) if args.count else stream


def build(args: argparse.Namespace, kind: str) -> tuple[IdCardReaderSim | StationSim, str, bytes]:
    """The device for ``kind`` from the arguments, its hub.toml snippet, and the bytes noise avoids."""
    plan = FaultPlan(parse_faults(args.faults), seed=args.seed)
    seconds = 60.0 / max(args.rate, 0.01)
    if kind == "idcard":
        gap = max(1, round(seconds / 0.3))
        visits = (CardVisit(p, gap=gap, stay=10) for p in _people(args))
        return IdCardReaderSim(visits, plan, args.fingerprint), 'driver = "idcard"', b"\xaa"
    stay, gap = 3, max(1, round(seconds) - 3)
    device = StationSim(args.dialect, args.mode, (Visit(p, stay, gap) for p in _people(args)), plan, seconds)
    driver = "serial-bp" if kind == "bp" else "serial-station"
    return device, f'driver = "{driver}", dialect = "{args.dialect}", mode = "{args.mode}"', b"\xa5"


async def _serve(args: argparse.Namespace, kind: str) -> int:
    device, snippet, avoid = build(args, kind)
    endpoint: Endpoint
    if args.tcp is not None:
        endpoint = await TcpEndpoint(args.host, args.tcp).start()
    else:
        endpoint = PtyEndpoint(args.link)
    print(f"simulated {kind} on {endpoint.device}", flush=True)
    where = (f'transport = "tcp", address = "{args.host}", port = {endpoint.device.rpartition(":")[2]}'
             if endpoint.device.startswith("tcp://") else f'address = "{endpoint.device}"')
    print(f"hub.toml, under [[stations.devices]]: {snippet}, {where}", flush=True)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(device, endpoint, device.plan, stop, avoid=avoid))
    try:
        await wait_finished(device)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await task
        endpoint.close()
    print(f"done: {len(device.delivered)} readings sent, {device.bad_frames} frames broken on purpose",
          file=sys.stderr)
    return 0


async def wait_finished(device: IdCardReaderSim | StationSim, step: float = 0.05) -> None:
    """Return once the device has run through its patients."""
    while True:
        if device.finished:
            return
        await asyncio.sleep(step)


def _run(args: argparse.Namespace, kind: str) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        try:
            return asyncio.run(_serve(args, kind))
        except ValueError as exc:  # bad --patients / --faults
            print(f"mchub sim {kind}: {exc}", file=sys.stderr)
            return 2
    return 130
