"""What the MLLP listener needs from storage, and the group-commit writer both stores share.

A :class:`MessageStore` must make ``store(raw, meta)`` durable (committed, fsynced) before
it returns: the listener sends the ACK only afterwards. Duplicate detection happens in
the same statement: a second *accepted* message with the same ``sender``, MSH-10 and
content (:func:`content_digest`) returns ``duplicate=True`` with the first one's id and
ACK code; the same sender and MSH-10 with other content is a new message, stored with
``reused=True`` ("control id reused" on the dashboard).

:class:`GroupCommitter` turns many concurrent ``store`` calls (one per connection) into
one transaction: the first caller's batch commits while the next batch gathers, so a
commit's fsync is shared by every connection waiting at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Literal, Protocol, TypeVar

import msgspec

from cloud.mllp.errors import StoreError

Status = Literal["accepted", "error", "rejected", "garbage", "oversized"]
ACK_STORED_MAX = 4096  #: bytes of the answer kept with a message (an ACK is MSH + MSA + ERR: far less)


class InboundMeta(msgspec.Struct, frozen=True, kw_only=True):
    """What the listener knows about a received message when it stores it."""

    received_at: int  #: ms since 1970-01-01 UTC
    peer: str  #: remote address
    status: Status
    ack_code: str = ""  #: the ACK code this message is answered with ('' for garbage)
    reason: str = ""  #: why it is not accepted (error text), '' when accepted
    sender: str = ""  #: MSH-3|MSH-4
    control_id: str = ""  #: MSH-10
    message_type: str = ""  #: e.g. ORU^R01
    ack: bytes = b""  #: the answer sent back (the first ACK_STORED_MAX bytes; b"" when none is due)

    @property
    def control_key(self) -> str | None:
        """Sender + MSH-10 of an accepted message (None otherwise): finds a reused control id."""
        if self.status != "accepted" or not self.control_id:
            return None
        return f"{self.sender}\x1f{self.control_id}"

    def dedup_key(self, raw: bytes) -> str | None:
        """Sender + MSH-10 + content digest: only the same message again is a duplicate.

        Only accepted messages take part (a corrected resend of a refused one may reuse its
        id). Analysers that restart MSH-10 at 1, or leave MSH-3/MSH-4 empty, send new
        messages under an old control id: those differ in content and are stored.
        """
        key = self.control_key
        return None if key is None else f"{key}\x1f{content_digest(raw)}"


def content_digest(raw: bytes) -> str:
    """SHA-256 of a message with its line endings normalised (CR, LF or CRLF; trailing ones dropped)."""
    body = raw.replace(b"\r\n", b"\r").replace(b"\n", b"\r").strip(b"\r\t \xef\xbb\xbf")
    return hashlib.sha256(body).hexdigest()


class StoreResult(msgspec.Struct, frozen=True):
    """Where a message was stored; for a duplicate, the first copy's id and answer."""

    id: str
    duplicate: bool
    ack_code: str
    reason: str = ""
    reused: bool = False  #: a new message under a control id this sender already used


class StoredMessage(msgspec.Struct, frozen=True):
    """A stored, accepted message waiting to be processed."""

    id: str
    raw: bytes
    received_at: int
    control_id: str
    message_type: str


class MessageStore(Protocol):
    """Durable storage of everything the listener receives."""

    async def store(self, raw: bytes, meta: InboundMeta) -> StoreResult:
        """Commit ``raw`` durably and return where; raise :class:`StoreError` when it cannot."""
        ...


T = TypeVar("T")
R = TypeVar("R")


class GroupCommitter(Generic[T, R]):
    """Collects concurrent submissions and commits them in batches through ``commit``.

    ``commit(items)`` returns one result per item, in order; if it raises, every caller
    of that batch gets a :class:`StoreError` (and nothing of that batch is acknowledged).
    Up to ``concurrency`` batches commit at the same time (one database connection each),
    so the next batch fills while the previous one is being flushed.
    """

    def __init__(self, commit: Callable[[Sequence[T]], Awaitable[Sequence[R]]], max_batch: int = 1000,
                 concurrency: int = 1) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._slots = asyncio.Semaphore(concurrency)
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.batches = 0  #: number of commits (for metrics and the benchmark)
        self.items = 0

    async def submit(self, item: T) -> R:
        """Queue ``item`` and wait until its batch is committed."""
        return await self.submit_future(item)

    def submit_future(self, item: T) -> asyncio.Future[R]:
        """Queue ``item``; the future resolves when its batch is committed (for callback-style callers)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._run(), name="group-commit")
        future: asyncio.Future[R] = loop.create_future()
        self._queue.put_nowait((item, future))
        return future

    async def _run(self) -> None:
        queue = self._queue
        while True:
            first = await queue.get()
            await self._slots.acquire()  # wait for a free connection; the batch keeps growing meanwhile
            batch = [first]  # a waiter that went away is still stored: its sender will resend
            while len(batch) < self._max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            task = asyncio.get_running_loop().create_task(self._commit_batch(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _commit_batch(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._commit([i for i, _ in batch])
            if len(results) != len(batch):
                raise StoreError(f"commit returned {len(results)} results for {len(batch)} messages")
        except Exception as exc:  # every waiter learns the batch failed; nothing is acked
            error = exc if isinstance(exc, StoreError) else StoreError(f"commit failed: {exc}")
            for _, f in batch:
                if not f.done():
                    f.set_exception(error)
            return
        finally:
            self._slots.release()
        self.batches += 1
        self.items += len(batch)
        for (_, f), r in zip(batch, results, strict=True):
            if not f.done():
                f.set_result(r)

    async def close(self) -> None:
        """Stop the writer task, wait for commits in flight (pending submissions fail)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        while not self._queue.empty():
            _, f = self._queue.get_nowait()
            if not f.done():
                f.set_exception(StoreError("store closed"))
