"""A hub's pipelined batches are stored in seq order within one worker (docs/protocol.md §2.1).

A hub sends up to ``batches_in_flight`` batches at once, each on its own connection, so
batch N+1 may reach the store before batch N. The store keeps the contract: a batch that
starts past the mark is answered 409. To spare the hub that round trip, a batch waits,
before its store transaction, until every batch of the same hub and epoch that starts
earlier and is already in progress in this worker has finished (stored or refused). A
batch is in progress from the moment its clear header checked out (the HTTP endpoint,
before the rest of its body is read) until its answer is made.

It waits only on batches that hold an ingest slot and are being opened or stored, never
on one that may not come, so there is no timeout and no deadlock: the earliest batch in
progress never waits. A predecessor that is not here (not sent yet, refused, or in another
worker) leaves the decision to the store's mark: 409, and the hub resends from it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

_Key = tuple[str, int]


class SeqOrder:
    """This worker's batches in progress, per (hub id, epoch)."""

    def __init__(self) -> None:
        self._busy: dict[_Key, list[tuple[int, asyncio.Event]]] = {}

    @contextlib.contextmanager
    def in_progress(self, hub_id: str, epoch: int, first_seq: int) -> Iterator[None]:
        """Mark a batch as in progress from its header until its store transaction has ended."""
        key, entry = (hub_id, epoch), (first_seq, asyncio.Event())
        self._busy.setdefault(key, []).append(entry)
        try:
            yield
        finally:
            entry[1].set()
            busy = self._busy[key]
            busy.remove(entry)
            if not busy:
                del self._busy[key]

    async def after_earlier(self, hub_id: str, epoch: int, first_seq: int) -> None:
        """Return once no batch of the hub that starts before ``first_seq`` is in progress here."""
        while earlier := [done for first, done in self._busy.get((hub_id, epoch), ()) if first < first_seq]:
            await asyncio.gather(*(done.wait() for done in earlier))
