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
from dataclasses import dataclass
from typing import Protocol

from cloud.mllp.errors import StoreError
from cloud.mllp.store import InboundMeta, StoreResult
from protocol.hl7 import mllp
from protocol.hl7.errors import Hl7Error
from protocol.hl7.message import Header

log = logging.getLogger("mchub.cloud.mllp")
PAUSE_AT = 64  #: messages waiting for their commit before reading is paused
RESUME_AT = 16


@dataclass(slots=True)
class Prepared:
    """A checked frame on its way to the store: what to store and how to answer it."""

    raw: bytes
    meta: InboundMeta
    header: Header | None
    error: Hl7Error | None
    close_after: bool = False  #: the sender is refused: close the connection after this answer


class Limits(Protocol):
    """The listener settings a connection reads (``cloud.mllp.server.ListenerConfig``)."""

    @property
    def max_size(self) -> int: ...
    @property
    def idle_timeout(self) -> float: ...
    @property
    def frame_timeout(self) -> float: ...


class Counters(Protocol):
    """The listener counter a connection moves (``cloud.mllp.server.ListenerStats``)."""

    timeouts: int


class Listener(Protocol):
    """What a connection needs of its listener (``cloud.mllp.server.MllpListener``), so this
    module does not import the server that imports it."""

    @property
    def config(self) -> Limits: ...
    @property
    def stats(self) -> Counters: ...
    def admit(self, address: str) -> str | None: ...
    def opened(self, connection: MllpConnection) -> None: ...
    def closed(self, connection: MllpConnection) -> None: ...
    def prepare(self, event: mllp.Event, peer: str) -> Prepared: ...
    def submit(self, p: Prepared) -> asyncio.Future[StoreResult]: ...
    def finish(self, p: Prepared, result: StoreResult) -> bytes | None: ...


class MllpConnection(asyncio.Protocol):
    """Created by the listener for every accepted connection."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self._decoder = mllp.StreamDecoder(listener.config.max_size)
        self._transport: asyncio.Transport | None = None
        self._peer = "?"
        self.address = "?"  #: remote IP address (connection limits and the allow-list key on it)
        self._waiting: deque[tuple[asyncio.Future[StoreResult], Prepared]] = deque()
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()  #: when the last complete frame arrived (or the connection opened)
        self._frame_started: float | None = None  #: when the bytes now buffered began arriving
        self._idle: asyncio.TimerHandle | None = None
        self._refused = False
        self._paused = False
        self._eof = False
        self._closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        if self._listener.admit(self.address) is not None:  # refused before reading a byte (audited)
            self._refused = True
            transport.abort()
            return
        self._listener.opened(self)
        self._idle = self._loop.call_later(self._tick(), self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self._refused or self._closed:
            return
        now = self._loop.time()
        events = self._decoder.feed(data)
        for event in events:
            if self._refused:
                break  # the sender was refused: nothing after it is read
            self._submit(event)
        busy = self._decoder.in_frame or self._decoder.pending > 0  # a frame (or junk) has begun
        if any(not isinstance(e, mllp.Garbage) for e in events):  # only a complete message is progress
            self._last = now
            self._frame_started = now if busy else None
        elif busy and self._frame_started is None:
            self._frame_started = now  # a frame began: it must end within frame_timeout, however it drips
        if len(self._waiting) >= PAUSE_AT and not self._paused and self._transport is not None:
            self._transport.pause_reading()
            self._paused = True

    def eof_received(self) -> bool:
        if self._refused:
            return False
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

    def _tick(self) -> float:
        c = self._listener.config
        return max(0.05, min(c.idle_timeout, c.frame_timeout) / 4)

    def _check_idle(self) -> None:
        """Close a connection that completes no message: bytes alone (a dripping client) do not count."""
        c = self._listener.config
        now = self._loop.time()
        answering = any(p.meta.status != "garbage" for _, p in self._waiting)  # an ACK is on its way
        if not answering and not self._closed:
            started = self._frame_started
            if now - self._last >= c.idle_timeout:
                log.info("MLLP %s: no complete message for %.0f s: closing", self._peer, now - self._last)
                self._listener.stats.timeouts += 1
                self.close()
                return
            if started is not None and now - started >= c.frame_timeout:
                log.info("MLLP %s: a frame begun %.1f s ago is still incomplete (%d bytes): closing", self._peer,
                         now - started, self._decoder.pending)
                self._listener.stats.timeouts += 1
                self.close()
                return
        self._idle = self._loop.call_later(self._tick(), self._check_idle)

    def _submit(self, event: mllp.Event) -> None:
        prepared = self._listener.prepare(event, self._peer)
        if prepared.close_after:
            self._refused = True
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
            if prepared.close_after:  # answered, then closed: the sender is not allowed here
                self._closed = True
                self._transport.close()
        if self._paused and len(waiting) <= RESUME_AT and self._transport is not None and not self._closed:
            self._transport.resume_reading()
            self._paused = False
        if self._eof and not waiting and self._transport is not None:
            self._transport.close()
