"""CPU-heavy pure work off the event loop: one spare process per cloud worker.

``asyncio.to_thread`` is enough for work that releases the GIL (scrypt, file I/O). Pure
Python work — building a 10,000-row register, writing its XLSX — holds the GIL, and a
thread holding it slows every socket call of the event loop to the interpreter's switch
interval (a 10,000-row export lifted loop lag p99 past 500 ms that way). Such work runs
here, in one worker process started on first use (``spawn``: nothing of the parent's
loop, sockets or keys is inherited), at a lower CPU priority (nice 10), one job at a time.
``fn`` and its arguments must be picklable module-level functions and plain data.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
_POOL: concurrent.futures.ProcessPoolExecutor | None = None
_LOCK = threading.Lock()


def _background() -> None:
    """In the spare process: yield the CPU to the cloud's event loop and to ingest (nice 10)."""
    with contextlib.suppress(OSError):
        os.nice(10)


def _pool() -> concurrent.futures.ProcessPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ProcessPoolExecutor(max_workers=1, initializer=_background,
                                                           mp_context=multiprocessing.get_context("spawn"))
        return _POOL


@atexit.register
def shutdown() -> None:
    """Stop the spare process (at exit; idempotent)."""
    global _POOL
    with _LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


async def run(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in the spare process; its exceptions are raised here."""
    try:
        return await asyncio.get_running_loop().run_in_executor(_pool(), fn, *args)
    except concurrent.futures.BrokenExecutor:  # the process died (OOM killer): start a fresh one, once
        global _POOL
        with _LOCK:
            _POOL = None
        return await asyncio.get_running_loop().run_in_executor(_pool(), fn, *args)
