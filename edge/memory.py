"""Keeping the hub's resident memory flat over months of running.

Measured on a hub with every driver kind, sync and its web pages polled
(``bench/bench_hub_rss.py``): the Python heap stays flat (tracemalloc), but glibc's malloc
kept what the hub's threads freed. Every thread that allocates gets its own malloc arena
(up to 8 per core) and freed blocks inside an arena are not returned to the system, so the
resident size crept up about 1 MB a minute. The measures, applied by :func:`apply` when
the hub starts and by :func:`trimmer` while it runs:

* at most ``ARENAS`` malloc arenas (``mallopt(M_ARENA_MAX)``), set before any thread starts;
* a fixed ``MMAP_THRESHOLD``: by default glibc raises the size from which a block gets its own
  mapping each time such a block is freed (up to 32 MiB), so after one large transient buffer
  (a batch, a page, a query's rows) every later one of that size came from the heap and left it
  fragmented; fixed, large blocks go back to the system when freed. One A/B pair of 15-minute
  rigs run side by side: heap slope over minutes 5-15 of 5.8 against 4.0 MB/h, heap at the end
  11.3 against 10.9 MB (issue 21);
* the blocking calls (SQLite reads, sealing batches) run on a small executor of
  ``IO_THREADS`` threads instead of asyncio's default (cores + 4); the reader serializes
  on its connection anyway, so more threads only meant more arenas;
* ``malloc_trim(0)`` every ``TRIM_INTERVAL_S`` seconds hands free pages back to the system;
* the same tick empties :mod:`linecache`: every logged traceback reads each source file it names
  into that cache and keeps it for good (a few hundred kB after a handful of different errors,
  measured on the soak rig; issue 21).

On a C library other than glibc the malloc calls are skipped.

The rest of what grew was not malloc's (issue 21, docs/edge.md "Staying small for months"):
SQLite's page caches (now 512 KiB a connection, ``edge.store.schema.CACHE_KIB``), the
drivers' in-memory resend windows (now 128 frames), status reads that held a whole day's
readings at once (now streamed), and ``sqlite_utils`` with numpy imported for migrations.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import linecache
import logging
import platform
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("edge.memory")

ARENAS = 1
MMAP_THRESHOLD = 128 * 1024  #: glibc's initial value, kept from rising
IO_THREADS = 2
#: between trims freed memory piles up at ~3 MB a minute on a busy hub (the soak's saw-tooth at 60 s)
TRIM_INTERVAL_S = 10.0
_M_ARENA_MAX = -8  #: glibc malloc.h
_M_MMAP_THRESHOLD = -3


def _glibc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def apply(loop: asyncio.AbstractEventLoop) -> None:
    """Limit malloc arenas, fix the mmap threshold, give the loop the hub's small executor (before any thread)."""
    libc = _glibc()
    if libc is not None:
        for option, value, name in ((_M_ARENA_MAX, ARENAS, "M_ARENA_MAX"),
                                    (_M_MMAP_THRESHOLD, MMAP_THRESHOLD, "M_MMAP_THRESHOLD")):
            if libc.mallopt(option, value) != 1:
                log.warning("mallopt(%s, %d) refused; memory may creep up on this system", name, value)
    loop.set_default_executor(ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="hub-io"))


async def trimmer(interval_s: float = TRIM_INTERVAL_S) -> None:
    """Empty the traceback source cache and trim the heap every ``interval_s`` seconds, forever."""
    libc = _glibc()
    while True:
        await asyncio.sleep(interval_s)
        linecache.clearcache()
        if libc is not None:
            libc.malloc_trim(0)
