"""The MLLP listener: persistent connections, one ACK per message, stored before acked.

For every frame a connection delivers, in order:

1. check it with :func:`protocol.hl7.message.check` (every check of ``parse``, fast, tolerant);
2. store the raw bytes with the outcome (accepted / error / rejected) — durably, through
   the group-committing :class:`~cloud.mllp.store.MessageStore`;
3. answer on the same connection: AA/AE/AR in original mode, CA/CE/CR in enhanced mode
   when MSH-15 asks for it. A resend of an accepted message (same sender, MSH-10 and
   content) is a duplicate: it is counted, not stored twice, and gets the first copy's
   answer. The same MSH-10 with other content is a new message ("control id reused").

Bytes between frames are stored as ``garbage`` and logged; an oversized message is
stored (its first ``max_size`` bytes) and answered AR. If the store fails, the message
is NOT acknowledged and the connection is closed: the sender keeps it and resends.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import logging
import os
import ssl
import time
from dataclasses import dataclass, field

from cloud.mllp.connection import MllpConnection, Prepared
from cloud.mllp.refusals import Refusals, install_accept_filter
from cloud.mllp.store import InboundMeta, MessageStore, Status, StoreResult
from protocol.hl7 import mllp
from protocol.hl7.ack import Code, ack_code, ack_wanted, build_ack
from protocol.hl7.dtm import format_dtm
from protocol.hl7.errors import Hl7Error, MessageTooLarge, SenderRefused
from protocol.hl7.message import INBOUND, Header, check
from protocol.hl7.salvage import salvage_header
from protocol.ids import now_ms

log = logging.getLogger("mchub.cloud.mllp")
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_STATUS: dict[str, Status] = {"AA": "accepted", "CA": "accepted", "AE": "error", "CE": "error",
                              "AR": "rejected", "CR": "rejected"}


LOOPBACK: tuple[IPNetwork, ...] = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def app_allowed(header: Header | None, apps: frozenset[str]) -> bool:
    """Whether MSH-3 (or MSH-3|MSH-4) is one of the ``allowed_apps`` (the listener's rule, also used
    when a refused message is checked again: cloud.integration.message_browser)."""
    if header is None:
        return False
    return header.sending_app in apps or header.sender in apps


@dataclass
class ListenerConfig:
    """Listener settings (``[mllp]`` in cloud.toml, see cloud.config.MllpConfig)."""

    host: str = "127.0.0.1"
    port: int = 2575
    max_size: int = mllp.DEFAULT_MAX_SIZE  #: bytes per message; larger ones are answered AR
    ssl: ssl.SSLContext | None = None  #: TLS when set
    idle_timeout: float = 900.0  #: close a connection that completed no message for this long (seconds)
    frame_timeout: float = 60.0  #: close a connection whose started frame is not complete after this long
    allow_any: bool = False  #: True: any address may connect (only when the configuration says so)
    allowed: tuple[IPNetwork, ...] = LOOPBACK  #: addresses that may connect (when not allow_any)
    #: "APP" or "APP|FACILITY" values MSH-3 (and MSH-4) must match; empty: not checked
    allowed_apps: frozenset[str] = frozenset()
    max_connections: int = 256  #: open connections in total
    max_per_source: int = 32  #: open connections from one address
    refusals: Refusals | None = None  #: where refusals are counted and audited (a quiet one by default)
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
    refused: int = 0  #: connections or messages refused by the allow-list or the connection limits
    timeouts: int = 0  #: connections closed by the idle or frame timeout
    reused: int = 0  #: new messages under a control id the sender had already used
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
        self._connections: set[MllpConnection] = set()
        self._per_source: dict[str, int] = {}
        self.refusals = self.config.refusals or Refusals()
        submit = getattr(store, "submit", None)  # stores with a group committer take frames without a task
        self._submit = submit if callable(submit) else None

    @property
    def port(self) -> int:
        """The bound port (useful with ``port=0``)."""
        assert self._server is not None, "listener not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def open_connections(self) -> int:
        """Connections accepted and not closed yet."""
        return len(self._connections)

    async def start(self) -> MllpListener:
        """Bind and start accepting connections."""
        c = self.config
        loop = asyncio.get_running_loop()
        install_accept_filter()
        self._server = await loop.create_server(lambda: MllpConnection(self), c.host, c.port, ssl=c.ssl)
        log.info("MLLP listener on %s:%d%s", c.host, self.port, " (TLS)" if c.ssl else "")
        return self

    async def close(self) -> None:
        """Stop accepting and close open connections."""
        if self._server is not None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            await self._server.wait_closed()
            self._server = None
        await self.refusals.close()

    async def __aenter__(self) -> MllpListener:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def admit(self, address: str) -> str | None:
        """Why a new connection from ``address`` is refused (audited), or None to accept it."""
        c = self.config
        reason: str | None = None
        if not c.allow_any and not self.address_allowed(address):
            reason = "sender_not_allowed"
        elif len(self._connections) >= c.max_connections:
            reason = "too_many_connections"
        elif self._per_source.get(address, 0) >= c.max_per_source:
            reason = "too_many_connections_from_source"
        if reason is not None:
            self.stats.refused += 1
            self.refusals.refuse(reason, address)
        return reason

    def address_allowed(self, address: str) -> bool:
        """True when ``address`` is in the allow-list."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in net for net in self.config.allowed)

    def opened(self, connection: MllpConnection) -> None:
        """A connection was accepted."""
        self.stats.connections += 1
        self._connections.add(connection)
        self._per_source[connection.address] = self._per_source.get(connection.address, 0) + 1

    def closed(self, connection: MllpConnection) -> None:
        """A connection ended."""
        if connection in self._connections:
            self._connections.discard(connection)
            left = self._per_source.get(connection.address, 1) - 1
            if left > 0:
                self._per_source[connection.address] = left
            else:
                self._per_source.pop(connection.address, None)

    def _timestamp(self) -> str:
        second = int(time.time())
        if self._stamp[0] != second:
            self._stamp = (second, format_dtm(second * 1000))
        return self._stamp[1]

    def submit(self, p: Prepared) -> asyncio.Future[StoreResult]:
        """Hand a prepared frame to the store; the future resolves once it is durably stored."""
        if self._submit is not None:
            future: asyncio.Future[StoreResult] = self._submit(p.raw, p.meta)
            return future
        return asyncio.ensure_future(self.store.store(p.raw, p.meta))

    def prepare(self, event: mllp.Event, peer: str) -> Prepared:
        """Check one frame (or skipped bytes) and decide what to store."""
        now = now_ms()
        if isinstance(event, mllp.Garbage):
            self.stats.garbage += 1
            log.warning("MLLP %s: %d bytes skipped (%s), stored for inspection", peer, len(event.data), event.reason)
            seen = salvage_header(event.data)  # e.g. a message sent without its start byte: say whose it was
            return Prepared(event.data, InboundMeta(
                received_at=now, peer=peer, status="garbage", reason=event.reason,
                sender=seen.sender if seen else "", control_id=seen.control_id if seen else "",
                message_type=f"{seen.message_type}^{seen.trigger_event}" if seen else ""), None, None)
        header: Header | None = None
        error: Hl7Error | None = None
        if isinstance(event, mllp.Oversized):
            self.stats.oversized += 1
            raw = event.head
            error = MessageTooLarge(f"message of {event.size} bytes exceeds the limit of {self.config.max_size}")
            header = salvage_header(raw)
        else:
            raw = event
            try:
                header = check(raw, self.config.supported)
            except Hl7Error as exc:
                error = exc
                header = salvage_header(raw)  # independent of the strict reader: MSA-2 and the log row keep MSH-10
        close_after = False
        if self.config.allowed_apps and not app_allowed(header, self.config.allowed_apps):
            error = SenderRefused(f"sending application {header.sender if header else '?'!r} (MSH-3|MSH-4) is "
                                  "not allowed on this listener", location="MSH^1^3")
            close_after = True
            self.stats.refused += 1
            self.refusals.refuse("app_not_allowed", peer.rsplit(":", 1)[0])
        code = ack_code(header, error)
        status: Status = "oversized" if isinstance(error, MessageTooLarge) else _STATUS[code]
        # built before the store so the row keeps the answer its sender gets (a duplicate's differs: not kept)
        ack = self._ack(header, code, error) if ack_wanted(header, ok=error is None) else b""
        meta = InboundMeta(
            received_at=now, peer=peer, status=status, ack_code=code,
            reason="" if error is None else f"{error.reason}: {error}",
            sender=header.sender if header else "", control_id=header.control_id if header else "",
            message_type=f"{header.message_type}^{header.trigger_event}" if header else "", ack=ack)
        return Prepared(raw, meta, header, error, close_after)

    def _ack(self, header: Header | None, code: Code, error: Hl7Error | None, text: str = "") -> bytes:
        return build_ack(header, code, control_id=f"{self._prefix}{next(self._ids)}", timestamp=self._timestamp(),
                         error=error, sending_app=self.config.application, sending_facility=self.config.facility,
                         text=text)

    def finish(self, p: Prepared, result: StoreResult) -> bytes | None:
        """After the durable store: count, log, and return the ACK (None when none is due).

        The ACK was built in :meth:`prepare` and stored with the message; a duplicate gets a
        new one saying so (not stored: the first copy keeps its own)."""
        meta, header, error = p.meta, p.header, p.error
        if meta.status == "garbage":
            return None
        self.stats.messages += 1
        code = ack_code(header, error)
        if result.duplicate:
            self.stats.duplicates += 1
            log.info("MLLP %s: duplicate of control id %s, answered %s again", meta.peer, meta.control_id, code)
        elif error is None:
            self.stats.accepted += 1
            if result.reused:
                self.stats.reused += 1
                log.info("MLLP %s: control id %s reused by %r with new content: stored as a new message",
                         meta.peer, meta.control_id, meta.sender)
        else:
            if code in ("AE", "CE"):
                self.stats.errors += 1
            else:
                self.stats.rejected += 1
            log.warning("MLLP %s: control id %r answered %s (%s at %s), stored as %s", meta.peer,
                        meta.control_id, code, error, error.location or "-", result.id)
        if not ack_wanted(header, ok=error is None):
            return None
        if result.duplicate:
            return self._ack(header, code, None, "duplicate: already received")
        return meta.ack
