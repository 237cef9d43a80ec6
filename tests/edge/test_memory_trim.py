"""edge.memory's trimmer: what a hub keeps only because it once needed it is let go on every tick."""

from __future__ import annotations

import asyncio
import contextlib
import linecache

import edge.memory


async def test_the_trimmer_empties_the_traceback_source_cache() -> None:
    linecache.getline(edge.memory.__file__, 1)  # what formatting a logged traceback does
    assert edge.memory.__file__ in linecache.cache
    task = asyncio.ensure_future(edge.memory.trimmer(interval_s=0.0))
    for _ in range(3):  # the task starts, sleeps 0 s, then trims (the loop runs ready callbacks in order)
        await asyncio.sleep(0)
    assert edge.memory.__file__ not in linecache.cache
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
