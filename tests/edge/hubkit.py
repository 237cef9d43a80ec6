"""Helpers to run a Hub inside the test's event loop and feed it readings directly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from drivers.base import Measurement
from edge import config
from edge.daemon import Hub
from edge.store.ledger import ReadingIn
from protocol import codes
from protocol.model import Observation
from tests.support.waiting import HANG_S, until


def bp(n: int, device_time: bool = True) -> Measurement:
    """Reading number n (its number is in device_time and raw)."""
    return Measurement(kind="blood_pressure", device_time=f"n{n}" if device_time else None, raw=b"bp%d" % n,
                       observations=(Observation(code=codes.SYSTOLIC, value=100.0 + n % 90, unit="mm[Hg]"),
                                     Observation(code=codes.DIASTOLIC, value=60.0 + n % 40, unit="mm[Hg]")))


async def wait_until(pred: Callable[[], bool], seconds: float = HANG_S) -> None:
    """Poll ``pred`` until true; fail after ``seconds`` (a hang, not a slow machine)."""
    await until(pred, "condition", seconds)


async def started(cfg_path: Path, clock: Callable[[], int] | None = None, web: bool = False) -> Hub:
    """A started hub for the config file."""
    hub = Hub(config.load(cfg_path), clock=clock)
    await hub.start(web=web)
    return hub


async def add_readings(hub: Hub, numbers: range, station: str = "room-1") -> list[int]:
    """Store readings concurrently (one group commit); returns their seqs."""
    return list(await asyncio.gather(*(hub.writer.submit(ReadingIn(station, "dev-1", bp(n))) for n in numbers)))


def synced(hub: Hub) -> bool:
    """True when the cloud acknowledged every record."""
    st = hub.reader.state()
    return bool(st["acked_through"] == st["next_seq"] - 1)
