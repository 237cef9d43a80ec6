"""``mchub demo``: the whole system on loopback with simulated devices and peers."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Add the demo options."""
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds and print a summary (default: run until Ctrl-C)")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from mchub import __version__

    print(f"mchub {__version__} demo: the protocol core is in place; hub, cloud and simulators follow.")
    return 0
