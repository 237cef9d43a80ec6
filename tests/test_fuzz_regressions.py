"""Replay every saved fuzz input (seeds and past crashes) through its target."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.targets import all_targets, run_one, seed_envelope

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
SAVED = sorted(p for d in ("seeds", "regressions") for p in (FUZZ / d).glob("*/*") if p.is_file())


def target_of(path: Path) -> str:
    return path.parent.name.replace("codec_", "codec:", 1)


@pytest.mark.parametrize("path", SAVED, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}/{p.name}")
def test_saved_input_raises_only_documented_errors(path: Path) -> None:
    run_one(target_of(path), path.read_bytes())


def test_every_saved_folder_names_a_target() -> None:
    names = set(all_targets())
    assert {target_of(p) for p in SAVED} <= names


@pytest.mark.parametrize("name", sorted(all_targets()))
def test_every_target_survives_trivial_inputs(name: str) -> None:
    for data in (b"", b"\x00", b"\xff" * 64, seed_envelope()):
        run_one(name, data)
