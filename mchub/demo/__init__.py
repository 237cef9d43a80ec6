"""``mchub demo``: the whole system on this machine, with simulated devices and hospital peers.

Modules: :mod:`~mchub.demo.run` (the orchestrator and its phases), ``cloudside`` and
``hubside`` (the child processes), ``setup`` (site and hub registration), ``devices``
(serial device simulators on ptys, the Bluetooth BP monitor), ``blebridge`` (the hub plugin
that runs the real BLE driver against it), ``script`` and ``scenario`` (scripted patients
walking through the stations), ``peers`` (HIS, PACS, MCH platform), ``cloudstats``,
``reconcile``, ``progress`` and ``display`` (what the user sees).
"""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
运行整个系统的演示 / run the whole system on this machine.

Starts a cloud (`mchub cloud serve`, SQLite by default), creates a site, registers two
hubs (`mchub edge run`) with two stations each, 一诊室 and 二诊室 — an ID-card reader,
a height/weight station and a BP monitor per station, simulated byte for byte (serial
devices on pseudo-terminals; 一诊室's BP monitor is a Bluetooth one whose cuff pressure the
kiosk shows live) — and sends scripted patients through them: adults, pregnant women and children, some with
abnormal values. One hub loses its network for a while and syncs its backlog when it
comes back. The HIS, PACS and MCH-platform simulators run beside the cloud where this
build has the parts that talk to them. A progress block shows patients measured,
readings buffered and synced, HL7 in/out and MCH uploads.

Without --duration the demo runs until Ctrl-C. The first Ctrl-C (or the end of
--duration) finishes the visits under way, lets both hubs sync everything and prints a
summary that reconciles every reading the simulated devices delivered with the cloud's
database; a second Ctrl-C quits at once. Every child process is stopped on the way out.
"""

EPILOG = """\
examples / 示例:
  mchub demo                              run until Ctrl-C
  mchub demo --duration 60                one minute, then the summary (exit 1 if anything was lost)
  mchub demo --workdir /tmp/d --keep      keep cloud.toml, hub.toml, the databases and logs/ afterwards
  mchub demo --postgres postgresql://mchub@127.0.0.1:5432/mchub_demo   use a PostgreSQL you run
  mchub demo --mqtt 127.0.0.1:1883        hub presence and commands over a Mosquitto you run

exit codes: 0 every reading reached the cloud exactly once; 1 something was lost or
duplicated (the summary names the device); 2 the demo could not start (the message
names the part and its log under WORKDIR/logs/).

Everything listens on 127.0.0.1 only. Troubleshooting: docs/troubleshooting.md.
"""


def register(parser: argparse.ArgumentParser) -> None:
    """Add the demo options."""
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                        help="运行多少秒后停止并打印汇总 / "
                             "stop after this many seconds of patients and print the summary "
                             "(default: run until Ctrl-C)")
    parser.add_argument("--workdir", type=Path, default=None, metavar="DIR",
                        help="存放配置、数据库和日志的空目录 / "
                             "an empty directory for configs, databases and logs (default: a new temporary "
                             "directory, removed after a clean run)")
    parser.add_argument("--keep", action="store_true", help="正常结束后保留临时目录 / "
                                                            "keep the temporary directory after a clean run")
    parser.add_argument("--seed", type=int, default=1, help="随机种子：相同种子产生相同患者 / "
                                                            "random seed: the same seed sends the same patients")
    parser.add_argument("--pace", type=float, default=3.0, metavar="SECONDS",
                        help="同一测量台两位患者之间的平均间隔（秒） / "
                             "mean pause between two patients at a station (default 3)")
    parser.add_argument("--offline-at", type=float, default=None, metavar="SECONDS",
                        help="网关 B 何时断网 / "
                             "when hub-B loses its network (default: at 25%% of --duration, or after 20 s)")
    parser.add_argument("--offline-for", type=float, default=None, metavar="SECONDS",
                        help="断网持续多久 / "
                             "how long it stays offline (default: 30%% of --duration, or 30 s every 3 minutes)")
    parser.add_argument("--faults", default="", metavar="SPEC",
                        help="设备故障 / "
                             "device faults, as for `mchub sim`: e.g. garbage=0.05,truncate=0.02 (default none)")
    parser.add_argument("--postgres", nargs="?", const="postgresql://127.0.0.1:5432/mchub_demo", default=None,
                        metavar="DSN", help="云端数据存入此 PostgreSQL（而非 SQLite）/ "
                        "keep the cloud's data in this PostgreSQL instead of SQLite "
                                            "(default DSN: postgresql://127.0.0.1:5432/mchub_demo)")
    parser.add_argument("--mqtt", nargs="?", const="127.0.0.1:1883", default=None, metavar="HOST:PORT",
                        help="使用此 MQTT 代理传递网关在线状态和指令 / "
                             "use this MQTT broker for hub presence and commands (default: no broker)")
    parser.add_argument("--summary-json", type=Path, default=None, metavar="FILE",
                        help="同时把最终汇总以 JSON 写入文件 / "
                             "also write the final summary as JSON to FILE (for scripts and CI)")
    parser.add_argument("--plain", action="store_true",
                        help="逐行打印进度 / "
                             "print progress lines instead of redrawing a block (automatic when not a terminal)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from mchub.demo.run import Options, run

    if args.duration is not None and args.duration <= 0:
        print("mchub demo: --duration must be a positive number of seconds")
        return 2
    # the children log to WORKDIR/logs; in this process only warnings would disturb the display
    logging.getLogger().setLevel(max(logging.WARNING, logging.getLogger().level))
    opts = Options(duration=args.duration, workdir=args.workdir, keep=args.keep, seed=args.seed, pace=args.pace,
                   offline_at=args.offline_at, offline_for=args.offline_for, postgres=args.postgres,
                   mqtt=args.mqtt, plain=args.plain, faults=args.faults,
                   summary_json=args.summary_json)
    return asyncio.run(run(opts))
