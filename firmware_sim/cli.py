"""``mchub sim``: simulated devices, ID cards, hub fleets and hospital peers."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``sim`` subcommands."""
    from firmware_sim import pacs_cli
    from firmware_sim.sim_fieldbus import register_sims

    sub = parser.add_subparsers(dest="sim", metavar="SIMULATOR")
    pacs_cli.register(sub.add_parser("pacs", help="simulated hospital PACS: make studies, STOW-RS, C-STORE"))
    register_sims(sub)  # modbus, mqtt
    parser.set_defaults(func=_pending)


def _pending(args: argparse.Namespace) -> int:
    print("mchub sim: choose a simulator (mchub sim --help)")
    return 1
