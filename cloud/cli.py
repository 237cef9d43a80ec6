"""``mchub cloud``: serve, migrate, import."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``cloud`` subcommands."""
    parser.set_defaults(func=_pending)


def _pending(args: argparse.Namespace) -> int:
    print("mchub cloud: this build has no cloud commands yet")
    return 1
