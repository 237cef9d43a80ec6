"""``mchub sim``: devices, fleet, peers."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``sim`` subcommands."""
    from firmware_sim.sim_fieldbus import register_sims

    sub = parser.add_subparsers(dest="sim", metavar="SIMULATOR")
    register_sims(sub)
    parser.set_defaults(func=_pending)


def _pending(args: argparse.Namespace) -> int:
    print("mchub sim: choose a simulator (mchub sim --help)")
    return 1
