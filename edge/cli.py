"""``mchub edge``: run, check-config, status, enroll, export."""

from __future__ import annotations

import argparse


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``edge`` subcommands."""
    parser.set_defaults(func=_pending)


def _pending(args: argparse.Namespace) -> int:
    print("mchub edge: this build has no edge commands yet")
    return 1
