"""Refused MLLP connections and senders, logged and audited in bounded space.

A stranger can open connections as fast as the network allows; one audit row per refusal
would let them fill the append-only audit log. :class:`Refusals` counts refusals per
(reason, source address) in memory — at most ``max_keys`` keys, more are counted under
source ``*`` — logs the first refusal of a key at once, and hands the counts to ``sink``
once per ``interval_s``: one entry per key per interval, whatever the rate.

``sink`` is the seam to the cloud's aggregated-refusal audit helper: :func:`audit_sink`
writes ``mllp.refused`` entries with :func:`cloud.audit.write` today; point it at the
shared helper when there is one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cloud import audit
from cloud.db.engine import Database
from protocol.ids import now_ms

log = logging.getLogger("mchub.cloud.mllp")


@dataclass
class Refusal:
    """Refusals of one kind from one source within one interval."""

    reason: str  #: sender_not_allowed / too_many_connections / app_not_allowed
    source: str  #: remote address, or "*" once too many sources were seen in one interval
    count: int
    first_ms: int
    last_ms: int


Sink = Callable[[list[Refusal]], Awaitable[None]]


def audit_sink(db: Database) -> Sink:
    """Write each aggregated refusal as one ``mllp.refused`` audit entry (no patient data)."""

    async def write(refusals: list[Refusal]) -> None:
        async with db.transaction() as tx:
            for r in refusals:
                await audit.write(tx, actor=f"mllp:{r.source}", action="mllp.refused", outcome="refused",
                                  reason=r.reason, at_ms=r.last_ms,
                                  detail={"count": r.count, "first_ms": r.first_ms, "last_ms": r.last_ms})

    return write


class Refusals:
    """Count refusals; log the first of each key; flush to ``sink`` once per interval."""

    def __init__(self, sink: Sink | None = None, *, interval_s: float = 60.0, max_keys: int = 256) -> None:
        self.sink = sink
        self.interval_s = interval_s
        self.max_keys = max_keys
        self.total = 0  #: refusals since start (for metrics and tests)
        self._pending: dict[tuple[str, str], Refusal] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def refuse(self, reason: str, source: str) -> None:
        """Record one refusal (callable from protocol callbacks: never blocks)."""
        self.total += 1
        now = now_ms()
        key = (reason, source)
        if key not in self._pending and len(self._pending) >= self.max_keys:
            key = (reason, "*")
        entry = self._pending.get(key)
        if entry is None:
            self._pending[key] = Refusal(reason, key[1], 1, now, now)
            log.warning("MLLP %s refused: %s (further refusals of this kind are counted, audited every %.0f s)",
                        source, reason, self.interval_s)
        else:
            entry.count += 1
            entry.last_ms = now
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval_s, self._due)

    def _due(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> list[Refusal]:
        """Hand the counts gathered so far to the sink (also called at shutdown); returns them."""
        batch, self._pending = list(self._pending.values()), {}
        if batch and self.sink is not None:
            try:
                await self.sink(batch)
            except Exception:  # auditing must not take the listener down; the log line stays
                log.exception("MLLP: could not audit %d refusal entries", len(batch))
        return batch

    async def close(self) -> None:
        """Stop the timer and flush what is left."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush()


ACCEPT_ERROR = "socket.accept() out of system resource"  #: what asyncio logs when accept() fails (EMFILE, ...)


class AcceptErrorFilter(logging.Filter):
    """Lets asyncio's accept-error report through once per ``interval_s``, with the count it held back.

    Out of file descriptors, asyncio logs a traceback for every accept retry; this filter on
    the ``asyncio`` logger keeps that to one line per interval (installed by the listener).
    """

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self.suppressed = 0
        self._next = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if ACCEPT_ERROR not in str(record.msg):
            return True
        now = time.monotonic()
        if now < self._next:
            self.suppressed += 1
            return False
        self._next = now + self.interval_s
        if self.suppressed:
            record.msg = f"{record.msg} ({self.suppressed} more in the last {self.interval_s:.0f} s not logged)"
            record.args = None
            self.suppressed = 0
        return True


def install_accept_filter(interval_s: float = 60.0) -> AcceptErrorFilter:
    """Add the filter to the ``asyncio`` logger once (idempotent); returns the one installed."""
    logger = logging.getLogger("asyncio")
    for f in logger.filters:
        if isinstance(f, AcceptErrorFilter):
            return f
    f = AcceptErrorFilter(interval_s)
    logger.addFilter(f)
    return f
