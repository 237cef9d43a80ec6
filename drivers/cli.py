"""``mchub decode``: decode one captured device frame for a field technician."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``decode`` arguments."""
    parser.add_argument("codec", nargs="?", help="codec name (see --list)")
    parser.add_argument("hex", nargs="?", help="the frame as hex; spaces allowed")
    parser.add_argument("--list", action="store_true", help="list the codecs")
    parser.add_argument("--show-pii", action="store_true", help="show ID numbers unmasked")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("no device codecs are installed in this build yet (see issue: device drivers)")
    return 1
