"""``mchub sim``: devices, fleet, peers."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``sim`` subcommands."""
    parser.set_defaults(func=_pending)


def _pending(args: argparse.Namespace) -> int:
    print("mchub sim: this build has no sim commands yet")
    return 1
