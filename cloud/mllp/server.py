"""The MLLP listener: persistent connections, one ACK per message, stored before acked.

For every frame a connection delivers, in order:

1. check it with :func:`protocol.hl7.message.check` (every check of ``parse``, fast, tolerant);
2. store the raw bytes with the outcome (accepted / error / rejected) — durably, through
   the group-committing :class:`~cloud.mllp.store.MessageStore`;
3. answer on the same connection: AA/AE/AR in original mode, CA/CE/CR in enhanced mode
   when MSH-15 asks for it. A resend of an accepted MSH-10 (same sender) is a duplicate:
   it is counted, not stored twice, and gets the first copy's answer.

Bytes between frames are stored as ``garbage`` and logged; an oversized message is
stored (its first ``max_size`` bytes) and answered AR. If the store fails, the message
is NOT acknowledged and the connection is closed: the sender keeps it and resends.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import ssl
import time
from dataclasses import dataclass, field

from cloud.mllp.errors import StoreError
from cloud.mllp.store import InboundMeta, MessageStore, Status
from protocol.hl7 import mllp
from protocol.hl7.ack import ack_code, ack_wanted, build_ack
from protocol.hl7.dtm import format_dtm
from protocol.hl7.errors import Hl7Error, MessageTooLarge
from protocol.hl7.message import INBOUND, Header, check, parse_header
from protocol.ids import now_ms

log = logging.getLogger("mchub.cloud.mllp")
_STATUS: dict[str, Status] = {"AA": "accepted", "CA": "accepted", "AE": "error", "CE": "error",
                              "AR": "rejected", "CR": "rejected"}


@dataclass
class ListenerConfig:
    """Listener settings (``[hl7.listener]`` in cloud.toml)."""

    host: str = "0.0.0.0"
    port: int = 2575
    max_size: int = mllp.DEFAULT_MAX_SIZE  #: bytes per message; larger ones are answered AR
    ssl: ssl.SSLContext | None = None  #: TLS when set
    idle_timeout: float = 900.0  #: close a connection silent for this long (seconds)
    application: str = "MCHUB"  #: MSH-3 of our ACKs
    facility: str = ""  #: MSH-4 of our ACKs
    supported: dict[str, frozenset[str]] = field(default_factory=lambda: dict(INBOUND))


@dataclass
class ListenerStats:
    """Counters for the dashboard."""

    connections: int = 0
    messages: int = 0
    accepted: int = 0
    errors: int = 0
    rejected: int = 0
    duplicates: int = 0
    garbage: int = 0
    oversized: int = 0


class MllpListener:
    """asyncio MLLP server; ``async with MllpListener(store, config) as listener: ...``."""

    def __init__(self, store: MessageStore, config: ListenerConfig | None = None) -> None:
        self.store = store
        self.config = config or ListenerConfig()
        self.stats = ListenerStats()
        self._server: asyncio.Server | None = None
        self._ids = itertools.count(1)
        self._prefix = os.urandom(3).hex().upper()
        self._stamp = (0, "")
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        assert self._server is not None, "listener not started"
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> MllpListener:
        """Bind and start accepting connections."""
        c = self.config
        self._server = await asyncio.start_server(self._connection, c.host, c.port, ssl=c.ssl,
                                                  limit=min(c.max_size, 1 << 20))
        log.info("MLLP listener on %s:%d%s", c.host, self.port, " (TLS)" if c.ssl else "")
        return self

    async def close(self) -> None:
        """Stop accepting, close open connections and wait for their handlers."""
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> MllpListener:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _timestamp(self) -> str:
        second = int(time.time())
        if self._stamp[0] != second:
            self._stamp = (second, format_dtm(second * 1000))
        return self._stamp[1]

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        self.stats.connections += 1
        self._writers.add(writer)
        decoder = mllp.StreamDecoder(self.config.max_size)
        try:
            while True:
                try:
                    async with asyncio.timeout(self.config.idle_timeout):  # cheaper than wait_for: no extra task
                        data = await reader.read(65536)
                except TimeoutError:
                    log.info("MLLP %s idle for %.0f s: closing", peer, self.config.idle_timeout)
                    data = b""
                events = decoder.feed(data) if data else decoder.close()
                for event in events:
                    answer = await self._handle(event, peer)
                    if answer is not None:
                        writer.write(mllp.encode(answer))
                if not data:
                    break
                await writer.drain()
        except StoreError as exc:
            log.error("MLLP %s: storage failed, message NOT acknowledged, closing so the sender resends: %s",
                      peer, exc)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
            log.info("MLLP %s: connection lost (%s)", peer, exc.__class__.__name__)
        except Exception:  # a bug must not take the listener down; the unacked message will be resent
            log.exception("MLLP %s: unexpected error, connection closed without acknowledging", peer)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    async def _handle(self, event: mllp.Event, peer: str) -> bytes | None:
        now = now_ms()
        if isinstance(event, mllp.Garbage):
            self.stats.garbage += 1
            log.warning("MLLP %s: %d bytes skipped (%s), stored for inspection", peer, len(event.data), event.reason)
            await self.store.store(event.data, InboundMeta(received_at=now, peer=peer, status="garbage",
                                                           reason=event.reason))
            return None
        header: Header | None = None
        error: Hl7Error | None = None
        if isinstance(event, mllp.Oversized):
            self.stats.oversized += 1
            raw = event.head
            error = MessageTooLarge(f"message of {event.size} bytes exceeds the limit of {self.config.max_size}")
            with contextlib.suppress(Hl7Error):
                header = parse_header(raw)
        else:
            raw = event
            try:
                header = check(raw, self.config.supported)
            except Hl7Error as exc:
                error = exc
                with contextlib.suppress(Hl7Error):
                    header = parse_header(raw)
        code = ack_code(header, error)
        status: Status = "oversized" if isinstance(error, MessageTooLarge) else _STATUS[code]
        reason = "" if error is None else f"{error.reason}: {error}"
        meta = InboundMeta(
            received_at=now, peer=peer, status=status, ack_code=code, reason=reason,
            sender=header.sender if header else "", control_id=header.control_id if header else "",
            message_type=f"{header.message_type}^{header.trigger_event}" if header else "")
        result = await self.store.store(raw, meta)
        self.stats.messages += 1
        if result.duplicate:
            self.stats.duplicates += 1
            log.info("MLLP %s: duplicate of control id %s, answered %s again", peer, meta.control_id,
                     result.ack_code)
            code = ack_code(header, None)  # only accepted messages are deduplicated
        elif error is None:
            self.stats.accepted += 1
        else:
            if code in ("AE", "CE"):
                self.stats.errors += 1
            else:
                self.stats.rejected += 1
            log.warning("MLLP %s: control id %r answered %s (%s at %s), stored as %s", peer,
                        meta.control_id, code, error, error.location or "-", result.id)
        if not ack_wanted(header, ok=error is None):
            return None
        return build_ack(header, code, control_id=f"{self._prefix}{next(self._ids)}", timestamp=self._timestamp(),
                         error=error if not result.duplicate else None, sending_app=self.config.application,
                         sending_facility=self.config.facility,
                         text="duplicate: already received" if result.duplicate else "")
