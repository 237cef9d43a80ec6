"""Reconnect delays: exponential, capped, with jitter so a clinic's devices do not retry in step.

>>> b = Backoff(initial=0.5, maximum=4.0, jitter=0.0)
>>> [b.next() for _ in range(5)]
[0.5, 1.0, 2.0, 4.0, 4.0]
>>> b.reset(); b.next()
0.5
"""

from __future__ import annotations

import random


class Backoff:
    """Delay before the next reconnect attempt; :meth:`reset` after a successful connect."""

    def __init__(self, initial: float = 0.2, maximum: float = 30.0, jitter: float = 0.2) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._current = initial

    def next(self) -> float:
        """The delay to wait now (seconds); doubles up to ``maximum``."""
        delay = self._current
        self._current = min(self._current * 2.0, self.maximum)
        if self.jitter:
            delay *= 1.0 + random.uniform(-self.jitter, self.jitter)
        return delay

    def reset(self) -> None:
        """Start again from ``initial``."""
        self._current = self.initial
