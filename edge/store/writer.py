"""Group commit: many producers, one writer thread, one fsync per group.

A producer ``await``s :meth:`GroupWriter.submit`; the call returns only after the
transaction holding its input has committed (``synchronous = FULL``), so a device is
told "stored" only when the reading is on disk. While one group is being committed,
new inputs queue up and form the next group: under load, thousands of readings share
one fsync; when idle, a single reading commits at once.

Back-pressure: at most ``max_pending`` inputs wait at a time (producers then block), and
while the disk is nearly full (:class:`DiskGuard`) records are held — not dropped — until
space is freed; acks and pruning still go through, since pruning is what frees space.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.crashpoints import crashpoint
from edge.errors import DiskFull
from edge.store.ledger import CallIn, InputRejected, Item, Ledger
from protocol.backoff import Backoff

log = logging.getLogger("edge.store")
_STOP = object()


class DiskGuard:
    """Watches free space on the database's file system (checked at most once a second)."""

    def __init__(self, path: Path, min_free_bytes: int,
                 usage: Callable[[Path], int] | None = None) -> None:
        self.path = path
        self.min_free = min_free_bytes
        self.usage = usage or (lambda p: shutil.disk_usage(p).free)
        #: bytes free inside the database file (pages freed by pruning, reused before the file grows)
        self.reclaimable: Callable[[], int] = lambda: 0
        self.free = self.usage(path)
        self.low = False
        self._checked = time.monotonic()

    def check(self, force: bool = False) -> bool:
        """True when there is room for new records."""
        now = time.monotonic()
        if force or now - self._checked >= 1.0:
            self._checked = now
            self.free = self.usage(self.path) + self.reclaimable()
            low = self.free < self.min_free
            if low and not self.low:
                log.error("DISK NEARLY FULL: %d MB free on %s (minimum %d MB). New readings are held until space "
                          "is freed; devices keep theirs. Free space or replace the SD card.",
                          self.free >> 20, self.path, self.min_free >> 20)
            elif self.low and not low:
                log.warning("disk space recovered (%d MB free); storing readings again", self.free >> 20)
            self.low = low
        return not self.low


class GroupWriter:
    """Asyncio front end of the writer thread."""

    def __init__(self, ledger: Ledger, guard: DiskGuard, max_group: int = 4000, max_pending: int = 20000) -> None:
        self.ledger = ledger
        self.guard = guard
        guard.reclaimable = self._reclaimable  # called on the writer thread only
        self.max_group = max_group
        self.max_pending = max_pending
        self._inflight = 0
        self._room: asyncio.Event | None = None
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.listeners: list[Callable[[], None]] = []  #: called (in the loop) after records were committed
        self.last_error: str | None = None
        self.commits = 0
        self.held = False  #: records are being held for lack of disk space

    def _reclaimable(self) -> int:
        free_pages, page_size = (self.ledger.conn.execute(f"PRAGMA {p}").fetchone()[0]
                                 for p in ("freelist_count", "page_size"))
        return int(free_pages) * int(page_size)

    def start(self) -> None:
        """Start the writer thread (call from the event loop)."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name="hub-writer", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Commit what is queued, then stop the thread."""
        if self._thread is not None:
            self._q.put(_STOP)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    async def submit(self, item: Item) -> Any:
        """Queue one input and wait until it is committed; returns its result (seq, session id, ...)."""
        assert self._loop is not None, "GroupWriter.start() first"
        while self._inflight >= self.max_pending:  # back-pressure: producers wait here
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()
        self._inflight += 1
        fut = self._loop.create_future()
        self._q.put((item, fut))
        try:
            result = await fut
        finally:
            self._inflight -= 1
            if self._room is not None and self._inflight < self.max_pending:
                self._room.set()
                self._room = None
        if isinstance(result, InputRejected):
            raise result
        return result

    async def call(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run ``fn(conn)`` in its own transaction on the writer thread."""
        return await self.submit(CallIn(fn))

    def _run(self) -> None:
        while True:
            first = self._q.get()
            if first is _STOP:
                return
            group = [first]
            stop = False
            while len(group) < self.max_group:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                group.append(nxt)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[tuple[Item, asyncio.Future[Any]]]) -> None:
        calls: list[tuple[Item, asyncio.Future[Any]]] = [(i, f) for i, f in group if isinstance(i, CallIn)]
        inputs: list[tuple[Item, asyncio.Future[Any]]] = [(i, f) for i, f in group if not isinstance(i, CallIn)]
        self._run_calls(calls)
        if not inputs:
            return
        if not self._hold_while_disk_low(inputs):
            return
        retry = Backoff(0.05, 5.0, jitter=0)  # one writer thread: nothing to spread out
        while True:
            try:
                out = self.ledger.commit([i for i, _ in inputs])
                break
            except sqlite3.Error as exc:  # disk full, I/O error: keep the group, retry, alert
                self.last_error = f"database write failed: {exc}"
                delay = retry.next()
                log.error("%s; retrying in %.1f s (nothing is dropped)", self.last_error, delay)
                self.guard.check(force=True)
                time.sleep(delay)
        self.last_error = None
        self.commits += 1
        crashpoint("after_commit")
        self._deliver([(f, r, True) for (_, f), r in zip(inputs, out, strict=True)], True)

    def _run_calls(self, calls: list[tuple[Item, asyncio.Future[Any]]]) -> None:
        results: list[tuple[asyncio.Future[Any], Any, bool]] = []
        for item, fut in calls:
            try:
                with self.ledger.conn:
                    results.append((fut, item.fn(self.ledger.conn), True))  # type: ignore[union-attr]
            except Exception as exc:
                results.append((fut, exc, False))
        self._deliver(results, False)

    def _deliver(self, results: list[tuple[asyncio.Future[Any], Any, bool]], committed: bool) -> None:
        if self._loop is not None and results:
            self._loop.call_soon_threadsafe(self._resolve, results, committed)

    def _hold_while_disk_low(self, inputs: list[tuple[Item, asyncio.Future[Any]]]) -> bool:
        """Wait for disk space, still running calls (pruning frees space). False: stopping, inputs failed."""
        while not self.guard.check():
            self.held = True
            try:
                nxt = self._q.get(timeout=0.5)
            except queue.Empty:
                continue
            if nxt is _STOP:
                self._q.put(_STOP)
                err = DiskFull(f"hub stopped while the disk was full; {len(inputs)} inputs were not stored")
                self._deliver([(f, err, False) for _, f in inputs], False)
                return False
            if isinstance(nxt[0], CallIn):
                self._run_calls([nxt])
            else:
                inputs.append(nxt)
        self.held = False
        return True

    def _resolve(self, results: list[tuple[asyncio.Future[Any], Any, bool]], committed: bool) -> None:
        for fut, value, ok in results:
            if fut.done():
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(value)
        if committed:
            for listener in self.listeners:
                listener()
