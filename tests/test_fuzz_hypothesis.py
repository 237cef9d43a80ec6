"""Hypothesis fuzzing of every parser that reads outside input (CI's bounded share of fuzzing).

Every target of fuzz/targets.py gets random bytes and mutated copies of its saved seeds;
only the target's documented error types may escape. ``HYPOTHESIS_PROFILE=long`` digs
deeper; ``python3 dev.py fuzz --all --minutes N`` runs atheris on every target.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fuzz.targets import all_targets, run_one

SEEDS = Path(__file__).resolve().parent.parent / "fuzz" / "seeds"


def seeds_of(name: str) -> list[bytes]:
    folder = SEEDS / name.replace(":", "_")
    return [p.read_bytes() for p in sorted(folder.glob("*"))] if folder.is_dir() else [b""]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few bytes flipped, inserted, deleted or the tail cut."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and data:
            del data[at:at + draw(st.integers(1, 8))]
        elif op == "cut":
            del data[at:]
    return bytes(data)


@pytest.mark.parametrize("name", sorted(all_targets()))
def test_target_survives_random_and_mutated_input(name: str) -> None:
    @given(st.one_of(st.binary(max_size=512), mutated(seeds_of(name))))
    def check(data: bytes) -> None:
        run_one(name, data)

    check()
