"""``mchub sim``: simulated devices, fleet and peers.

Each simulator is one entry of :data:`SIMS`: ``kind -> ("module:function", help)``.
The function gets its own sub-parser, adds its options and sets ``func`` (called with
the parsed namespace, returning an exit code). Adding a simulator = adding one entry;
modules are imported only when ``mchub sim`` is parsed.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

from firmware_sim.serial_cli import EPILOG as SERIAL_EPILOG

#: simulator kind -> ("module:register function", one-line help)
SIMS: dict[str, tuple[str, str]] = {
    "idcard": ("firmware_sim.serial_cli:register_idcard",
               "resident ID-card reader (SAM serial, 115200 8N1) with scripted cards"),
    "station": ("firmware_sim.serial_cli:register_station",
                "serial height/weight station: a5, tanita-csv or detecto dialect, push or poll"),
    "bp": ("firmware_sim.serial_cli:register_bp", "serial blood-pressure monitor (Accutorr-style P: lines)"),
}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``sim`` subcommands."""
    parser.epilog = SERIAL_EPILOG
    sub = parser.add_subparsers(dest="sim_kind", metavar="KIND")
    for kind, (target, help_) in SIMS.items():
        module, _, func = target.partition(":")
        cmd = sub.add_parser(kind, help=help_, description=help_, epilog=SERIAL_EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        add: Callable[[argparse.ArgumentParser], None] = getattr(importlib.import_module(module), func)
        add(cmd)
