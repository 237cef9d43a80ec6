"""Shared by the fieldbus driver tests: a recording sink (the hub's side of a driver) and waiting."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import pytest

from drivers.base import Event, Measurement
from drivers.errors import FrameError
from tests.support.waiting import HANG_S

#: a guard against a hung test, never a performance assertion
GUARD = HANG_S


class HubCrash(Exception):
    """The hub died before the measurement was stored."""


class RecordingSink:
    """The hub's side of a driver: records what it is told; can crash on the n-th event."""

    def __init__(self, crash_on: int | None = None) -> None:
        self.events: list[Measurement] = []
        self.errors: list[FrameError] = []
        self.states: list[bool] = []
        self.crash_on = crash_on
        self.calls = 0

    async def event(self, event: Event) -> None:
        self.calls += 1
        if self.calls == self.crash_on:
            raise HubCrash
        assert isinstance(event, Measurement)
        self.events.append(event)

    def frame_error(self, error: FrameError) -> None:
        assert error.raw, "a bad frame is kept for inspection"
        self.errors.append(error)

    def state(self, connected: bool, detail: str = "") -> None:
        self.states.append(connected)

    def recovered(self) -> bool:
        """The link went down at least once and came back."""
        return False in self.states and self.states[-1] is True


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds (checked every 20 ms); fail after GUARD seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD
    for _ in itertools.count():
        if condition():
            return
        if loop.time() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        await asyncio.sleep(0.02)


