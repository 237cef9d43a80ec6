"""``mchub sim``: devices, fleet, peers."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``sim`` subcommands."""
    sub = parser.add_subparsers(dest="sim_command", metavar="SIMULATOR")
    from firmware_sim import pacs_cli

    pacs_cli.register(sub.add_parser("pacs", help="simulated hospital PACS: make studies, STOW-RS, C-STORE"))
    parser.set_defaults(func=_pending)


def _pending(args: argparse.Namespace) -> int:
    print("mchub sim: choose a simulator, e.g. `mchub sim pacs --help`")
    return 1
