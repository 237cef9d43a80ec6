"""Connection limits and request deadlines for uvicorn (hub web server and cloud workers).

:class:`GuardedH11Protocol` is uvicorn's h11 protocol with what a dripping or flooding
client must not get past (issue 17, finding 6):

* at most ``max_connections`` open connections per server and ``max_per_source`` from
  one client address (addresses in ``exempt``, e.g. a trusted reverse proxy, count only
  against the total); a connection over a limit is answered ``503`` with Retry-After and
  closed at once, so its file descriptor is freed and the listener keeps accepting;
* a request's headers must be complete within ``header_timeout_s`` of its first byte
  (of the connection, for the first request), and its body within
  ``request_timeout_s``; the deadlines are set once per request and are not moved by
  later bytes, so sending one byte at a time does not keep a connection;
* refusals and expiries are logged at most once a minute per kind, never with a
  traceback, and reported to ``on_refusal(source, reason)`` (the cloud's audit tally).

Use it with ``uvicorn.Config(..., http=protocol_with(limits))`` in-process, or the import
string ``"webui.conn_guard:GuardedH11Protocol"`` for worker processes after
:func:`configure` in each worker. Counters live on uvicorn's per-server state, so two servers in one
process keep separate counts.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from webui.log_limit import LogLimit

log = logging.getLogger("mchub.web.connections")
_BUSY_TEXT = "连接过多，请稍后再试 / too many connections from your address; retry later\n".encode()
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT))


@dataclass(frozen=True)
class ConnLimits:
    """What :class:`GuardedH11Protocol` enforces (see the module docstring)."""

    max_connections: int = 500
    max_per_source: int = 32
    header_timeout_s: float = 10.0
    request_timeout_s: float = 120.0
    exempt: tuple[str, ...] = ()  #: addresses or networks (a trusted proxy) without a per-source limit
    on_refusal: Callable[[str, str], None] | None = field(default=None, compare=False)

    def exempts(self, host: str) -> bool:
        """True when ``host`` is in ``exempt``."""
        if not self.exempt:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        for item in self.exempt:
            if item == "*":
                return True
            try:
                if address in ipaddress.ip_network(item, strict=False):
                    return True
            except ValueError:
                continue
        return False


def exempt_from(forwarded_allow_ips: str) -> tuple[str, ...]:
    """The ``exempt`` tuple from a ``forwarded_allow_ips`` setting ("a, b, net/24")."""
    return tuple(x.strip() for x in forwarded_allow_ips.split(",") if x.strip())


_limits = ConnLimits()
_log_limit = LogLimit(60.0)


def configure(limits: ConnLimits) -> None:
    """Set the limits of :class:`GuardedH11Protocol` in this process (a cloud worker, which
    uvicorn hands the protocol by import string)."""
    global _limits
    _limits = limits


def protocol_with(limits: ConnLimits) -> type[GuardedH11Protocol]:
    """A protocol class bound to ``limits`` (for a server started in this process, e.g. the
    hub's): unaffected by :func:`configure` or by other servers of the process."""
    return type("BoundGuardedH11Protocol", (GuardedH11Protocol,), {"limits": limits})


class _Counts:
    def __init__(self) -> None:
        self.total = 0
        self.per_source: dict[str, int] = {}
        self.refused = 0
        self.expired = 0


def counts_of(server_state: Any) -> _Counts:
    """The guard's counters on one uvicorn server (created on first use)."""
    counts: _Counts | None = getattr(server_state, "mchub_conn_guard", None)
    if counts is None:
        counts = _Counts()
        server_state.mchub_conn_guard = counts
    return counts


def _report(source: str, reason: str, limits: ConnLimits, detail: str) -> None:
    if (skipped := _log_limit.due(reason)) is not None:
        log.warning("connection %s from %s: %s (%d more since the last line)", reason, source, detail, skipped)
    if limits.on_refusal is not None:
        limits.on_refusal(source, reason)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with connection limits and fixed request deadlines."""

    limits: ConnLimits | None = None  #: bound by :func:`protocol_with`; None: the process's (:func:`configure`)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._limits = self.limits or _limits
        self._counts = counts_of(self.server_state)
        self._source = self.client[0] if self.client else "?"
        self._counted = False
        self._phase: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        c, lim = self._counts, self._limits
        over_source = (not lim.exempts(self._source)
                       and c.per_source.get(self._source, 0) >= lim.max_per_source)
        if c.total >= lim.max_connections or over_source:
            c.refused += 1
            _report(self._source, "limit", lim, "over the per-address limit" if over_source
                    else f"over the limit of {lim.max_connections} open connections")
            transport.write(_BUSY)
            transport.close()
            return
        self._counted = True
        c.total += 1
        c.per_source[self._source] = c.per_source.get(self._source, 0) + 1
        self._arm("headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if getattr(self, "_counted", False):
            self._counted = False
            c = self._counts
            c.total -= 1
            left = c.per_source.get(self._source, 1) - 1
            if left > 0:
                c.per_source[self._source] = left
            else:
                c.per_source.pop(self._source, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE:
            self._arm("headers")  # a no-op while the same request's header deadline runs
        elif state is h11.SEND_BODY:
            self._arm("body")
        else:
            self._disarm()

    def _arm(self, phase: str) -> None:
        if self._phase == phase:
            return
        self._disarm()
        self._phase = phase
        timeout = self._limits.header_timeout_s if phase == "headers" else self._limits.request_timeout_s
        self._deadline = self.loop.call_later(timeout, self._expire, phase)

    def _disarm(self) -> None:
        if getattr(self, "_deadline", None) is not None:
            assert self._deadline is not None
            self._deadline.cancel()
            self._deadline = None
        self._phase = None

    def _expire(self, phase: str) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if phase == "headers" and self.cycle is not None and not self.cycle.response_complete:
            return  # the app is still answering the previous request; its keep-alive timer follows
        self._counts.expired += 1
        _report(self._source, f"{phase}_timeout", self._limits, f"{phase} not complete in time; closed")
        self.transport.close()
