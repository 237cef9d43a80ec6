"""The sync client's HTTP/1.1: POST a body, read the answer, keep the connections alive.

h11 (the HTTP/1.1 state machine uvicorn already runs the hub's web server on) over asyncio
streams, instead of aiohttp: the hub posts batches to one URL and needs nothing else of a
client library, and aiohttp with its helpers (yarl, multidict, attrs, cookie jars) held ~9.5 MB
of the hub's ~72 MB resident (issue 21). TLS checks the server's certificate and name against the
system's CA store (``ssl.create_default_context``), as aiohttp's default did.

Idle connections are kept (up to ``keep``) and reused; one found closed by the server while it
sat idle (a keep-alive timeout) is retried once on a new connection: the cloud stores a batch at
most once whatever it is sent (docs/protocol.md §2), so a resent POST is harmless.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

#: an answer larger than this is not the cloud's (an ack is a few hundred bytes)
MAX_BODY = 4 * 1024 * 1024
#: an idle connection older than this is closed rather than reused (servers' keep-alive: uvicorn 5 s)
IDLE_S = 4.0


class HttpError(Exception):
    """The exchange failed: the connection closed early or the answer was not HTTP/1.1."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  #: names lower-case; a repeated header keeps its last value
    body: bytes


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    http: h11.Connection
    idle_since: float = 0.0

    def usable(self) -> bool:
        return (not self.writer.is_closing() and not self.reader.at_eof()
                and time.monotonic() - self.idle_since < IDLE_S)

    def close(self) -> None:
        self.writer.close()


class _Stale(Exception):
    """A reused connection was closed before any answer came."""


class Poster:
    """POSTs to one origin (``scheme://host:port``); ``timeout_s`` bounds each whole exchange."""

    def __init__(self, url: str, timeout_s: float, keep: int = 4) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.host_header = parts.netloc.rpartition("@")[2]
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if parts.scheme == "https" else None
        self.timeout_s = timeout_s
        self.keep = keep
        self._idle: list[_Conn] = []

    async def post(self, body: bytes, headers: dict[str, str], sent: Callable[[], None] | None = None) -> Answer:
        """POST ``body``; ``sent`` is called once the request is written, before the answer is read."""
        async with asyncio.timeout(self.timeout_s):
            while self._idle:
                conn = self._idle.pop()
                if not conn.usable():
                    conn.close()
                    continue
                try:
                    return await self._exchange(conn, body, headers, sent, reused=True)
                except _Stale:
                    continue
            reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
            conn = _Conn(reader, writer, h11.Connection(h11.CLIENT))
            return await self._exchange(conn, body, headers, sent, reused=False)

    async def _exchange(self, conn: _Conn, body: bytes, headers: dict[str, str], sent: Callable[[], None] | None,
                        reused: bool) -> Answer:
        keep = False
        try:
            answer, keep = await self._request(conn, body, headers, sent, reused)
            return answer
        except h11.LocalProtocolError as exc:  # e.g. a header value h11 refuses to send
            raise HttpError(f"the request is not valid HTTP/1.1: {exc}") from exc
        finally:
            if keep and len(self._idle) < self.keep:
                conn.http.start_next_cycle()
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()

    async def _request(self, conn: _Conn, body: bytes, headers: dict[str, str], sent: Callable[[], None] | None,
                       reused: bool) -> tuple[Answer, bool]:
        head = [("Host", self.host_header), ("Content-Length", str(len(body))), *headers.items()]
        out = conn.http.send(h11.Request(method="POST", target=self.path, headers=head))
        conn.writer.write((out or b"") + (conn.http.send(h11.Data(data=body)) or b"")
                          + (conn.http.send(h11.EndOfMessage()) or b""))
        try:
            await conn.writer.drain()
        except (ConnectionError, BrokenPipeError) as exc:
            if reused:
                raise _Stale from exc
            raise
        if sent is not None:
            sent()
        status, got, size, chunks = 0, {}, 0, []
        while True:
            try:
                event = conn.http.next_event()
            except h11.RemoteProtocolError as exc:
                raise HttpError(f"the answer is not HTTP/1.1: {exc}") from exc
            if event is h11.NEED_DATA:
                try:
                    data = await conn.reader.read(65536)
                except ConnectionResetError as exc:
                    if reused and not status:
                        raise _Stale from exc
                    raise
                if not data and reused and not status:
                    raise _Stale
                conn.http.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                got = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_BODY:
                    raise HttpError(f"the answer is larger than {MAX_BODY} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                keep = conn.http.our_state is h11.DONE and conn.http.their_state is h11.DONE
                return Answer(status, got, b"".join(chunks)), keep
            elif isinstance(event, h11.ConnectionClosed):
                raise HttpError("the server closed the connection before answering")
            # h11.InformationalResponse (100 Continue): the final answer follows

    async def close(self) -> None:
        """Close every idle connection."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
