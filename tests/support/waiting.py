"""Waiting for a condition in a test: poll until it holds, with a budget that only catches hangs.

A test waits on the event it needs (a log line, a row, an answer), never on a timer. When the
event has no notification the test can await, it polls with :func:`until` (in a coroutine) or
:func:`wait_until` (in plain code). The budget is :data:`HANG_S`: long enough that a machine
with a load average of 10 never reaches it, so reaching it means the thing is stuck, not slow.
The polls return as soon as the condition holds, so a generous budget costs nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

__all__ = ["HANG_S", "until", "wait_until"]

HANG_S = 120.0  #: a wait this long means a hang, never a slow machine


async def until(check: Callable[[], Any], what: str, seconds: float = HANG_S, interval: float = 0.02) -> Any:
    """Poll ``check`` (plain or async) until it returns something truthy; returns that value."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {seconds:.0f} s (last value {got!r})")
        await asyncio.sleep(interval)


def wait_until(check: Callable[[], Any], what: str, seconds: float = HANG_S, interval: float = 0.05,
               detail: Callable[[], str] = lambda: "") -> Any:
    """Blocking :func:`until` for tests that drive processes from plain code; ``detail()`` goes into the failure."""
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached in {seconds:.0f} s (last value {got!r}) {detail()}")
        time.sleep(interval)

