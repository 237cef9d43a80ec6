"""Retry delays: the ONE backoff of mchub (device reconnects, hub sync, MQTT links, the outbox).

Exponential from ``initial``, doubling per consecutive failure, capped at ``maximum``, then
jittered DOWN by up to ``jitter`` of itself (the default 0.5 waits 50-100 % of the step):
hubs, devices and workers that failed together do not retry in step, and no wait ever
exceeds the configured maximum. ``jitter=0`` gives exact steps::

    >>> [delay(n, initial=0.5, maximum=4.0, jitter=0) for n in (1, 2, 3, 4, 5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    >>> b = Backoff(initial=0.5, maximum=4.0, jitter=0)
    >>> [b.next() for _ in range(5)]
    [0.5, 1.0, 2.0, 4.0, 4.0]
    >>> b.reset(); b.next()
    0.5

A server's ``Retry-After`` is a lower bound: :func:`not_before` spreads UP from it.
Pure: no I/O, no clock; pass a seeded ``random.Random`` to make it deterministic.
"""

from __future__ import annotations

import random

from protocol.errors import ProtocolError

_MAX_DOUBLINGS = 64  #: 2**64 times any sane initial delay is past every cap; keeps the float finite


class BackoffError(ProtocolError):
    """A backoff was configured with impossible bounds (a programming or configuration error)."""


def _check(initial: float, maximum: float, jitter: float) -> None:
    if not initial > 0:
        raise BackoffError(f"backoff initial delay must be > 0 s, got {initial}")
    if not maximum >= initial:
        raise BackoffError(f"backoff maximum ({maximum} s) must be at least the initial delay ({initial} s)")
    if not 0 <= jitter <= 1:
        raise BackoffError(f"backoff jitter must be within 0..1, got {jitter}")


def delay(failures: int, *, initial: float, maximum: float, jitter: float = 0.5,
          rng: random.Random | None = None) -> float:
    """Seconds to wait after ``failures`` consecutive failures (1 = the first): ``initial * 2**(failures-1)``,
    capped at ``maximum``, times a factor uniform in ``[1 - jitter, 1]``."""
    _check(initial, maximum, jitter)
    step = min(maximum, initial * 2.0 ** min(max(0, failures - 1), _MAX_DOUBLINGS))
    if not jitter:
        return step
    return step * (rng or random).uniform(1.0 - jitter, 1.0)


def not_before(seconds: float, *, spread: float = 0.5, rng: random.Random | None = None) -> float:
    """A wait of at least ``seconds`` (a server's Retry-After), spread up by up to ``spread`` of it."""
    if not seconds >= 0 or not spread >= 0:
        raise BackoffError(f"not_before needs seconds >= 0 and spread >= 0, got {seconds}, {spread}")
    return seconds * (rng or random).uniform(1.0, 1.0 + spread)


class Backoff:
    """The delay sequence of one retry loop: :meth:`next` after each failure, :meth:`reset` after a success."""

    def __init__(self, initial: float = 0.2, maximum: float = 30.0, jitter: float = 0.5,
                 rng: random.Random | None = None) -> None:
        _check(initial, maximum, jitter)
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self.rng = rng
        self.failures = 0  #: consecutive failures so far

    def next(self) -> float:
        """Count one more failure; the seconds to wait before the next attempt."""
        self.failures += 1
        return delay(self.failures, initial=self.initial, maximum=self.maximum, jitter=self.jitter, rng=self.rng)

    def reset(self) -> None:
        """A success: the next failure waits ``initial`` again."""
        self.failures = 0
