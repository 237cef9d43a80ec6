"""One MLLP connection as an asyncio Protocol: frames in, durable store, ACKs out in order.

No task per message: ``data_received`` checks each frame and hands it to the store's
group committer; when a commit completes, a callback writes the ACKs that are ready, in
arrival order. A store failure closes the connection before any later ACK is written,
so nothing unstored is ever acknowledged. A sender that pipelines too far ahead is
paused (TCP back-pressure) until its ACKs catch up.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from cloud.mllp.errors import StoreError
from cloud.mllp.store import StoreResult
from protocol.hl7 import mllp

if TYPE_CHECKING:
    from cloud.mllp.server import MllpListener, Prepared

log = logging.getLogger("mchub.cloud.mllp")
PAUSE_AT = 64  #: messages waiting for their commit before reading is paused
RESUME_AT = 16


class MllpConnection(asyncio.Protocol):
    """Created by the listener for every accepted connection."""

    def __init__(self, listener: MllpListener) -> None:
        self._listener = listener
        self._decoder = mllp.StreamDecoder(listener.config.max_size)
        self._transport: asyncio.Transport | None = None
        self._peer = "?"
        self._waiting: deque[tuple[asyncio.Future[StoreResult], Prepared]] = deque()
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._idle: asyncio.TimerHandle | None = None
        self._paused = False
        self._eof = False
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._listener.opened(self)
        self._idle = self._loop.call_later(self._listener.config.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        self._last = self._loop.time()
        for event in self._decoder.feed(data):
            self._submit(event)
        if len(self._waiting) >= PAUSE_AT and not self._paused and self._transport is not None:
            self._transport.pause_reading()
            self._paused = True

    def eof_received(self) -> bool:
        for event in self._decoder.close():
            self._submit(event)
        self._eof = True
        return bool(self._waiting)  # True keeps the socket open to write the last ACKs, then _flush closes

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self._idle is not None:
            self._idle.cancel()
        if exc is not None:
            log.info("MLLP %s: connection lost (%s)", self._peer, exc.__class__.__name__)
        self._listener.closed(self)

    def close(self) -> None:
        """Close the connection (listener shutdown)."""
        if self._transport is not None:
            self._transport.close()

    def _check_idle(self) -> None:
        timeout = self._listener.config.idle_timeout
        idle = self._loop.time() - self._last
        if idle >= timeout and not self._waiting:
            log.info("MLLP %s idle for %.0f s: closing", self._peer, idle)
            self.close()
        else:
            self._idle = self._loop.call_later(max(1.0, timeout - idle), self._check_idle)

    def _submit(self, event: mllp.Event) -> None:
        prepared = self._listener.prepare(event, self._peer)
        future = self._listener.submit(prepared)
        self._waiting.append((future, prepared))
        future.add_done_callback(self._flush)

    def _flush(self, _: object) -> None:
        waiting = self._waiting
        while waiting and waiting[0][0].done():
            future, prepared = waiting.popleft()
            error = future.exception()
            if self._closed or self._transport is None:
                continue  # stored (or not) without an ACK: the sender resends, duplicates are detected
            if error is not None:
                if isinstance(error, StoreError):
                    log.error("MLLP %s: storage failed, message NOT acknowledged, closing so the sender "
                              "resends: %s", self._peer, error)
                else:
                    log.error("MLLP %s: unexpected error, closing without acknowledging", self._peer,
                              exc_info=error)
                self._closed = True
                self._transport.close()
                continue
            answer = self._listener.finish(prepared, future.result())
            if answer is not None:
                self._transport.write(mllp.encode(answer))
        if self._paused and len(waiting) <= RESUME_AT and self._transport is not None and not self._closed:
            self._transport.resume_reading()
            self._paused = False
        if self._eof and not waiting and self._transport is not None:
            self._transport.close()
