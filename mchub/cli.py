"""The ``mchub`` command line.

Each subcommand belongs to the package that implements it: ``edge`` -> ``edge/cli.py``,
``cloud`` -> ``cloud/cli.py`` and so on. A package's ``cli`` module exposes
``register(parser)``, which adds its arguments and sets ``func`` (called with the parsed
namespace, returning an exit code). Modules import their heavy dependencies inside the
handlers, so ``mchub --help`` stays fast on a Raspberry Pi.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from mchub import __version__
from protocol.logmask import MaskingFilter

#: subcommand -> (module providing ``register``, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mchub.demo", "演示 / run the whole system on this machine with simulated devices and peers"),
    "edge": ("edge.cli", "诊所网关 / the clinic hub: run, check-config, status, enroll, export"),
    "cloud": ("cloud.cli", "云端服务 / the cloud server: serve, migrate, import hand-carried exports"),
    "provision": ("provisioning.cli", "设备开通 / fleet CA, sites, enrollment tokens, hubs and devices"),
    "sim": ("firmware_sim.cli", "模拟器 / simulated devices, ID cards, hub fleets and hospital peers"),
    "decode": ("drivers.cli", "解码 / decode one captured device frame (hex) and print the readings as JSON"),
    "bench": ("mchub.bench", "基准测试 / run the benchmark suite in bench/ and print one table"),
}

EPILOG = """\
examples / 示例:
  mchub demo                       whole system on loopback; prints the URLs to open
  mchub decode --list              which device frame codecs exist
  mchub decode ble-bp "00 7800 5000 5A00"
  mchub edge check-config --config hub.toml
  mchub cloud serve --config cloud.toml

各命令的选项见 `mchub COMMAND --help`；文档 docs/README.md。
Run `mchub COMMAND --help` for the options of one command. Docs: docs/README.md
"""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; ``only``: import and register that one command's options (the others
    are listed in ``--help`` all the same), so ``mchub edge run`` does not hold the cloud's, the
    provisioning authority's and the simulators' modules for as long as the hub runs."""
    parser = argparse.ArgumentParser(
        prog="mchub",
        description="mchub — 诊所测量网关（网关、云端、开通、模拟器）/ clinic measurement gateway (hub, cloud, "
                    "provisioning, simulators).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mchub {__version__}",
                        help="显示版本号并退出 / show the version and exit")
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="日志级别 / how much to log on stderr (default: INFO)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_, description=help_,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        if only is None or name == only:
            register: Callable[[argparse.ArgumentParser], None] = importlib.import_module(module).register
            register(cmd)
    _bilingual_help_flag(parser)
    return parser


def _bilingual_help_flag(parser: argparse.ArgumentParser) -> None:
    """``-h/--help`` of every command says what it does in both languages (argparse's own text is English)."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            action.help = "显示帮助并退出 / show this help and exit"
        elif isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _bilingual_help_flag(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``mchub`` command. Started as a process (``argv`` from the command line), it first
    sets umask 077: every file and directory it or its children create is private to its user
    (0600 / 0700: databases, WAL files, logs, configs, backups; issue 17 finding 9)."""
    if argv is None:
        os.umask(0o077)
    words = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(next((w for w in words if w in COMMANDS), None))  # options before it are not commands
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:  # the last line of defence: no ID number in any log
        if not any(isinstance(f, MaskingFilter) for f in handler.filters):
            handler.addFilter(MaskingFilter())
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        # a command group without its subcommand prints its own help
        parser.parse_args([*(argv or sys.argv[1:]), "--help"])
        return 2
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
