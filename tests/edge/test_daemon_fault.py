"""A hub task that fails stops the hub with its reason, and ``mchub edge run`` then exits non-zero."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge import config
from edge.daemon import Hub
from tests.edge.conftest import make_hub_dir
from tests.support.refcloud import RefCloud
from tests.support.waiting import HANG_S, until


async def test_a_failed_task_stops_the_hub_and_says_why(tmp_path: Path, refcloud: RefCloud) -> None:
    hub = Hub(config.load(make_hub_dir(tmp_path / "hub", refcloud, stations='[[stations]]\nid = "room-1"\n')))
    running = asyncio.create_task(hub.run())
    await until(lambda: hub.web_port is not None or running.done(), "the hub to start")

    async def broken() -> None:
        raise RuntimeError("a bug in a hub task")

    hub._spawn(broken(), "broken")
    async with asyncio.timeout(HANG_S):
        await running  # stopped on its own, not by a signal
    assert hub.failure == "hub task broken failed: RuntimeError('a bug in a hub task')"
