"""``mchub provision``: ca, site, token, hub, device."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``provision`` subcommands."""
    parser.set_defaults(func=_pending)


def _pending(args: argparse.Namespace) -> int:
    print("mchub provision: this build has no provision commands yet")
    return 1
