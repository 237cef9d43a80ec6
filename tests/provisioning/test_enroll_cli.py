"""`mchub edge enroll` / `rotate-key` handlers (mounted by edge/cli.py) against the test peer."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from provisioning import admin
from provisioning.enroll_cli import add_enroll_commands, hardware_serial
from tests.provisioning.conftest import run_sync as _run
from tests.provisioning.peer import PeerServer, PeerState


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mchub edge")
    add_enroll_commands(parser.add_subparsers(dest="command"))
    return parser


def _main(*argv: str) -> int:
    args = _parser().parse_args(argv)
    return int(args.func(args))


def test_enroll_then_rotate_from_the_command_line(peer: tuple[PeerServer, PeerState], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    server, state = peer
    _run(admin.add_site(state.stores, site_id="dongcheng", name="东城", actor="a", now_ms=state.clock()))
    token = _run(admin.create_token(state.stores, site_id="dongcheng", actor="a", now_ms=state.clock())).text
    hub_dir = tmp_path / "hub"
    argv = ("enroll", "--cloud", server.url, "--token", token, "--state-dir", str(hub_dir), "--serial", "PI-0001")
    assert _main(*argv) == 0
    assert "dongcheng-h01" in capsys.readouterr().out
    assert _main(*argv) == 0  # re-run: safe
    assert _main("rotate-key", "--state-dir", str(hub_dir)) == 0
    assert "dongcheng-h01" in capsys.readouterr().out
    other = ("enroll", "--cloud", server.url, "--token", token, "--state-dir", str(tmp_path / "b"), "--serial", "X")
    assert _main(*other) == 1
    assert "already used" in capsys.readouterr().err
    assert _main("enroll", "--cloud", server.url, "--token", "ABCDE", "--state-dir", str(tmp_path / "c"),
                 "--serial", "X") == 1
    assert "25" in capsys.readouterr().err


def test_hardware_serial_sources(tmp_path: Path) -> None:
    (tmp_path / "dt").write_bytes(b"10000000abcdef01\x00")
    (tmp_path / "mid").write_text("0123456789abcdef0123456789abcdef\n")
    assert hardware_serial((str(tmp_path / "missing"), str(tmp_path / "dt"))) == "10000000abcdef01"
    assert hardware_serial((str(tmp_path / "mid"),)) == "0123456789abcdef0123456789abcdef"
    assert hardware_serial((str(tmp_path / "missing"),)) is None
