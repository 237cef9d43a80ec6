"""Worker processes that read stored HL7 messages for the processor (parse, result rows, HMACs).

Reading a message (:func:`cloud.integration.hl7_read.read_message`) is most of the
processor's CPU. In the processor's own process it competes with the database work of the
group before it (one Python process: one core), so :class:`ReadWorkers` reads the next
groups in ``workers`` processes while the processor applies the current one. Only reading
moves: claims, matching, writes and marks stay in the processor's transactions, in arrival
order, so order, exactly-once and crash safety are the processor's as before. A worker that
dies or fails is replaced, and the messages it had are read in the processor instead.

Workers hold the codes map and the blind-index key (the HMACs), never a database connection;
they exit when the processor does (also when it is killed: they watch their parent).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import multiprocessing
import os
import signal
import threading
import time

from cloud.integration.hl7_read import Item, decode_reads, encode_reads, read_message
from cloud.mllp.store import StoredMessage
from cloud.records.crypto_at_rest import AtRest
from protocol.hl7.codemap import CodeMap

log = logging.getLogger("mchub.cloud.integration")
GC_YOUNG = 20_000  #: as the processor (cloud.integration.hl7_process): a batch keeps many objects alive
PARENT_CHECK_S = 1.0  #: how often a worker looks whether the processor is still there

_state: tuple[CodeMap, AtRest] | None = None


def default_workers() -> int:
    """One worker per core beside the processor's own, at least one, at most two."""
    return max(1, min(2, (os.cpu_count() or 1) - 1))


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent:  # the processor is gone (even by SIGKILL): so is its reader
            os._exit(0)


def _start(codes: CodeMap, encryption_key: bytes, blind_index_key: bytes, parent: int) -> None:
    """A worker's set-up (its initializer)."""
    global _state
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the processor, which stops us
    gc.set_threshold(GC_YOUNG, 50, 100)
    _state = (codes, AtRest(encryption_key, blind_index_key))
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _read(batch: list[StoredMessage]) -> bytes:
    """In a worker: read ``batch`` and encode what was read."""
    assert _state is not None, "worker not set up"
    codes, at_rest = _state
    return encode_reads([read_message(m, codes, at_rest) for m in batch])


class ReadWorkers:
    """``workers`` reader processes; :meth:`submit` batches in order, await them in order."""

    def __init__(self, codes: CodeMap, encryption_key: bytes, blind_index_key: bytes,
                 workers: int | None = None) -> None:
        self._args = (codes, encryption_key, blind_index_key, os.getpid())
        self._codes, self._at_rest = codes, AtRest(encryption_key, blind_index_key)
        self.workers = workers or default_workers()
        self._pool = self._new_pool()

    def _new_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        # spawn: a fresh interpreter, nothing of the processor's event loop or connections inherited
        return concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                      initializer=_start, initargs=self._args)

    def submit(self, batch: list[StoredMessage]) -> asyncio.Future[list[Item]]:
        """Start reading ``batch`` in a worker; the future gives its items in order."""
        pool = self._pool
        try:
            read = pool.submit(_read, batch)
        except concurrent.futures.BrokenExecutor:  # a worker died since the last batch
            pool = self._replace(pool)
            read = pool.submit(_read, batch)
        return asyncio.ensure_future(self._items(batch, pool, asyncio.wrap_future(read)))

    def _replace(self, pool: concurrent.futures.ProcessPoolExecutor) -> concurrent.futures.ProcessPoolExecutor:
        """A new pool instead of ``pool`` (once: batches of the same broken pool find it replaced)."""
        if pool is self._pool:
            log.warning("HL7 reader process failed; starting a new one")
            pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
        return self._pool

    async def _items(self, batch: list[StoredMessage], pool: concurrent.futures.ProcessPoolExecutor,
                     read: asyncio.Future[bytes]) -> list[Item]:
        try:
            return decode_reads(await read, batch)
        except asyncio.CancelledError:
            raise
        except Exception:  # a worker died or failed: a new pool, and this batch read here
            log.warning("HL7 reader process failed; reading %d message(s) in the processor", len(batch),
                        exc_info=True)
            self._replace(pool)
            return [read_message(m, self._codes, self._at_rest) for m in batch]

    def close(self) -> None:
        """Stop the workers (the batches still queued are dropped)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
