"""protocol.backoff: the one retry delay of mchub, and no second one hiding anywhere."""

from __future__ import annotations

import doctest
import random
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import backoff
from protocol.backoff import Backoff, BackoffError, delay, not_before
from protocol.errors import ProtocolError

REPO = Path(__file__).resolve().parents[2]


def test_the_docstring_examples_hold() -> None:
    assert doctest.testmod(backoff).failed == 0


def test_steps_double_up_to_the_cap_and_jitter_only_shortens() -> None:
    rng = random.Random(7)
    for failures, step in [(1, 2.0), (2, 4.0), (3, 8.0), (5, 30.0), (9, 30.0), (10_000, 30.0)]:
        waits = {delay(failures, initial=2.0, maximum=30.0, rng=rng) for _ in range(50)}
        assert all(step / 2 <= w <= step for w in waits) and len(waits) > 10
    assert delay(0, initial=2.0, maximum=30.0, jitter=0) == 2.0  # "no failure yet" waits the initial delay


def test_a_seeded_rng_makes_it_deterministic() -> None:
    a, b = Backoff(1.0, 60.0, rng=random.Random(3)), Backoff(1.0, 60.0, rng=random.Random(3))
    assert [a.next() for _ in range(8)] == [b.next() for _ in range(8)]
    a.reset()
    assert a.failures == 0 and a.next() <= 1.0


def test_retry_after_is_a_lower_bound() -> None:
    rng = random.Random(1)
    waits = [not_before(10.0, rng=rng) for _ in range(100)]
    assert all(10.0 <= w <= 15.0 for w in waits) and max(waits) > 12.0
    assert not_before(0.0) == 0.0


@pytest.mark.parametrize(("initial", "maximum", "jitter"), [(0, 1, 0.5), (-1, 1, 0.5), (2, 1, 0.5), (1, 2, 1.5),
                                                             (1, 2, -0.1), (float("nan"), 2, 0.5)])
def test_impossible_bounds_are_refused_with_a_typed_error(initial: float, maximum: float, jitter: float) -> None:
    with pytest.raises(BackoffError) as err:
        Backoff(initial, maximum, jitter)
    assert isinstance(err.value, ProtocolError)
    with pytest.raises(BackoffError):
        not_before(-1.0)


@given(st.integers(min_value=-5, max_value=10**6), st.floats(min_value=1e-3, max_value=1e4),
       st.floats(min_value=1.0, max_value=1e3), st.floats(min_value=0.0, max_value=1.0))
def test_never_above_the_cap_never_below_the_jitter_floor(failures: int, initial: float, factor: float,
                                                          jitter: float) -> None:
    maximum = initial * factor
    w = delay(failures, initial=initial, maximum=maximum, jitter=jitter, rng=random.Random(failures))
    assert (1.0 - jitter) * initial * 0.999999 <= w <= maximum * 1.000001


# Retry loops that used to carry their own doubling and jitter (issue 19, finding 8). Any of
# these shapes outside protocol/backoff.py is a second backoff: use protocol.backoff instead.
_SECOND_BACKOFF = re.compile(r"delay\s*\*=?\s*2\b|\*\s*2\s*\*\*\s*(min|max|\(|self|attempts|failures)|"
                             r"\*\s*(self\._rng|self\.rng|rng|random)\.uniform\((0\.5, 1\.0|0\.8, 1\.2|1\.0, 1\.5)\)")


def test_no_retry_loop_carries_its_own_backoff() -> None:
    offenders = []
    for package in ("cloud", "edge", "drivers", "provisioning", "firmware_sim", "mchub", "protocol"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path == REPO / "protocol" / "backoff.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _SECOND_BACKOFF.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert not (REPO / "drivers" / "backoff.py").exists()
    assert offenders == [], "\n".join(offenders)
