"""``mchub sim``: simulated devices, ID cards, hub fleets and hospital peers.

Each simulator is one entry of :data:`SIMS`: ``kind -> ("module:function", help)``.
The function gets its own sub-parser, adds its options and sets ``func`` (called with
the parsed namespace, returning an exit code). Adding a simulator = adding one entry;
modules are imported only when ``mchub sim`` is parsed.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable

#: simulator kind -> ("module:register function", one-line help)
SIMS: dict[str, tuple[str, str]] = {
    "idcard": ("firmware_sim.serial_cli:register_idcard",
               "身份证阅读器 / resident ID-card reader (SAM serial, 115200 8N1) with scripted cards"),
    "station": ("firmware_sim.serial_cli:register_station",
                "身高体重秤 / serial height/weight station: a5, tanita-csv or detecto dialect, push or poll"),
    "bp": ("firmware_sim.serial_cli:register_bp", "血压计 / serial blood-pressure monitor (Accutorr-style P: lines)"),
    "pacs": ("firmware_sim.pacs_cli:register", "医院 PACS / simulated hospital PACS: make studies, STOW-RS, C-STORE"),
    "fleet": ("firmware_sim.fleet_cli:register",
              "虚拟网关群 / many virtual hubs syncing realistic traffic to a cloud (load)"),
    "netfault": ("firmware_sim.netfaults:register",
                 "网络故障 / TCP relay with latency, bandwidth cap, resets, black hole"),
}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``sim`` subcommands."""
    from firmware_sim.sim_fieldbus import register_sims

    sub = parser.add_subparsers(dest="sim", metavar="SIMULATOR")
    for kind, (target, help_) in SIMS.items():
        module, _, func = target.partition(":")
        cmd = sub.add_parser(kind, help=help_, description=help_,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        add: Callable[[argparse.ArgumentParser], None] = getattr(importlib.import_module(module), func)
        add(cmd)
    register_sims(sub)  # modbus, mqtt (several kinds from one module)
    parser.set_defaults(func=_pending)


def _pending(args: argparse.Namespace) -> int:
    print("mchub sim: 请选择模拟器 / choose a simulator (mchub sim --help)")
    return 1
