"""MLLP sender: one persistent connection, one message at a time, waiting for its ACK.

``send`` returns the positive ACK or raises: :class:`NegativeAck` for AE/AR/CE/CR (the
receiver refused; resending will not help), :class:`AckTimeout` when no matching ACK
came back after every attempt. A missing ACK means "unknown": the connection is dropped
and the *same bytes* (same MSH-10) are sent again on a new one, so the receiver's
duplicate detection keeps the effect exactly-once. ACKs for other control ids (a late
answer to an earlier attempt) are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl

from cloud.mllp.errors import AckTimeout, NegativeAck, PeerUnavailable
from protocol.hl7 import mllp
from protocol.hl7.ack import Ack, parse_ack
from protocol.hl7.errors import Hl7Error
from protocol.hl7.message import parse_header

log = logging.getLogger("mchub.cloud.mllp.client")


class MllpSender:
    """``async with MllpSender(host, port) as s: ack = await s.send(message)``."""

    def __init__(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None,
                 ack_timeout: float = 30.0, connect_timeout: float = 10.0, attempts: int = 3,
                 retry_delay: float = 1.0, max_size: int = mllp.DEFAULT_MAX_SIZE) -> None:
        self.host, self.port = host, port
        self.ssl = ssl_context
        self.ack_timeout = ack_timeout
        self.connect_timeout = connect_timeout
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.max_size = max_size
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = mllp.StreamDecoder(max_size)
        self._pending: list[bytes] = []
        self.sent_frames = 0  #: frames written, including resends

    async def __aenter__(self) -> MllpSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is not None and self._writer is not None and not self._writer.is_closing():
            return self._reader, self._writer
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl)
        except (OSError, TimeoutError, ssl.SSLError) as exc:
            raise PeerUnavailable(f"cannot connect to {self.host}:{self.port}: {exc or 'timeout'}") from exc
        self._reader, self._writer = reader, writer
        self._decoder = mllp.StreamDecoder(self.max_size)
        self._pending = []
        return reader, writer

    async def close(self) -> None:
        """Close the connection (the next send reconnects)."""
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def send(self, message: bytes) -> Ack:
        """Deliver ``message`` and return its positive ACK (see the module doc for failures)."""
        control_id = parse_header(message).control_id
        frame = mllp.encode(message)
        last: Exception | None = None
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                await asyncio.sleep(self.retry_delay)
            try:
                reader, writer = await self._connect()
                writer.write(frame)
                self.sent_frames += 1
                await writer.drain()
                async with asyncio.timeout(self.ack_timeout):
                    ack = await self._read_ack(reader, control_id)
            except (OSError, TimeoutError, ssl.SSLError, asyncio.IncompleteReadError, PeerUnavailable) as exc:
                last = exc
                log.info("MLLP %s:%d control id %s attempt %d/%d: %s", self.host, self.port, control_id,
                         attempt, self.attempts, exc.__class__.__name__ if not str(exc) else exc)
                await self.close()
                continue
            if ack.accepted:
                return ack
            raise NegativeAck(ack.code, ack.reason, control_id)
        if isinstance(last, PeerUnavailable):
            raise PeerUnavailable(f"control id {control_id}: {last}") from last
        raise AckTimeout(f"no ACK for control id {control_id} after {self.attempts} attempts "
                         f"(last: {last.__class__.__name__ if last else '-'})") from last

    async def _read_ack(self, reader: asyncio.StreamReader, control_id: str) -> Ack:
        while True:
            while self._pending:
                frame = self._pending.pop(0)
                try:
                    ack = parse_ack(frame)
                except Hl7Error as exc:
                    log.warning("MLLP %s:%d sent an unreadable ACK (%s); ignored", self.host, self.port, exc)
                    continue
                if ack.control_id == control_id:
                    return ack
                log.info("MLLP %s:%d: late ACK for control id %s skipped", self.host, self.port, ack.control_id)
            data = await reader.read(65536)
            if not data:
                raise ConnectionResetError("connection closed before the ACK")
            for event in self._decoder.feed(data):
                if isinstance(event, bytes):
                    self._pending.append(event)
                else:
                    log.warning("MLLP %s:%d: skipped %s", self.host, self.port, event)
