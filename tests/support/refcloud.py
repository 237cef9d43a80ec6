"""A small reference receiver of the sync protocol (docs/protocol.md), for hub tests only.

NOT the product cloud (that is ``cloud/``): a test peer built straight from the spec with
``protocol.envelope``/``protocol.ack``, storing records in SQLite with
``ON CONFLICT DO NOTHING`` on ``(hub_id, epoch, seq)`` and a per-stream mark. It runs an
aiohttp server on a free loopback port in its own thread, so it outlives hub processes
that a crash test kills, and it can inject faults into the next requests:

    "400"      malformed batch (the hub must keep it and retry)
    "413"      batch too large
    "503"      busy, Retry-After: 0
    "drop"     close the connection without answering (nothing stored)
    "ack_lost" store the batch, then close the connection (the hub never sees the ack)
    "down"     refuse to answer at all (connection closed before reading), like "drop"

A gap (409) is answered for real whenever a batch starts past the mark.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519

from edge.identity import write_cloud_keys
from protocol.ack import Ack, AckStatus, batch_digest, sign_ack
from protocol.envelope import open_batch, parse_header
from protocol.errors import EnvelopeError
from protocol.export import read_export
from protocol.keys import RecipientPrivate
from protocol.model import to_json

_STATUS = {"malformed": 400, "unsupported_version": 400, "unknown_suite": 400, "bad_body": 400,
           "tampered_ciphertext": 400, "invalid_record": 400, "too_large": 413,
           "bad_signature": 401, "unknown_key": 401, "wrong_recipient": 401}


class RefCloud:
    """The test peer. ``hubs`` maps hub id -> registered Ed25519 public key."""

    def __init__(self, db: Path) -> None:
        self.signing = ed25519.Ed25519PrivateKey.generate()
        self.recipient = RecipientPrivate.generate()
        self.hubs: dict[str, ed25519.Ed25519PublicKey] = {}
        self.revoked: set[str] = set()
        self.faults: collections.deque[str] = collections.deque()
        self.down = False  #: while True every request is dropped (cloud unreachable)
        #: called (in the peer's thread) as each request arrives, before it is answered or dropped
        self.on_request: Callable[[], None] | None = None
        #: first seq of a batch -> the fault (as in ``faults``) its first arrival meets
        self.batch_faults: dict[int, str] = {}
        self.statuses: list[int] = []  #: HTTP status of every answered request, in order
        self.requests = 0
        self.body_bytes = 0
        self.db = sqlite3.connect(db, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS records (hub_id TEXT, epoch INTEGER, seq INTEGER, type TEXT, "
                        "json TEXT, PRIMARY KEY (hub_id, epoch, seq))")
        self.db.execute("CREATE TABLE IF NOT EXISTS marks (hub_id TEXT, epoch INTEGER, mark INTEGER, "
                        "PRIMARY KEY (hub_id, epoch))")
        self.port = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def write_key_file(self, path: Path) -> Path:
        """The cloud key file a hub installer gets (``mchub edge init --cloud-key``)."""
        write_cloud_keys(path, self.recipient.public(), self.signing.public_key())
        return path

    def start(self) -> RefCloud:
        """Serve on a free loopback port; returns self (``.url`` is then valid)."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self) -> None:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/api/v1/batches", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self.db.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.on_request is not None:
            self.on_request()
        fault = self.faults.popleft() if self.faults else None
        if self.down or fault in ("drop", "down"):
            request.transport.abort()  # type: ignore[union-attr]
            return web.Response()
        data = await request.read()
        self.requests += 1
        self.body_bytes += len(data)
        with contextlib.suppress(EnvelopeError):
            fault = self.batch_faults.pop(parse_header(data).first_seq, fault)
        response = self._answer(request, data, fault)
        self.statuses.append(response.status)
        return response

    def _answer(self, request: web.Request, data: bytes, fault: str | None) -> web.StreamResponse:
        if fault == "drop":  # a batch fault: the connection breaks before an answer
            request.transport.abort()  # type: ignore[union-attr]
            return web.Response()
        if fault == "503":
            return web.json_response({"reason": "overloaded", "message": "test"}, status=503,
                                     headers={"Retry-After": "0"})
        if fault == "400":
            return web.json_response({"reason": "bad_body", "message": "test"}, status=400)
        if fault == "413":
            return web.json_response({"reason": "too_large", "message": "test"}, status=413)
        status, body = self.ingest(data)
        if fault == "ack_lost":
            request.transport.abort()  # type: ignore[union-attr]
            return web.Response()
        if status in (200, 409):
            return web.Response(status=status, body=body, content_type="application/vnd.mchub.ack")
        return web.Response(status=status, body=body, content_type="application/json")

    def ingest(self, data: bytes) -> tuple[int, bytes]:
        """Verify, open and store one sealed batch; returns (HTTP status, body)."""
        with self._lock:
            return self._ingest(data)

    def _ingest(self, data: bytes) -> tuple[int, bytes]:
        try:
            header = parse_header(data)
            key = self.hubs.get(header.hub_id)
            if key is None or header.hub_id in self.revoked:
                return 403, b'{"reason": "unknown_hub", "message": "hub not enrolled"}'
            _, records = open_batch(data, signer=key, recipients={self.recipient.public().key_id: self.recipient})
        except EnvelopeError as exc:
            return _STATUS.get(exc.reason, 400), b'{"reason": "%s", "message": "test"}' % exc.reason.encode()
        hub, epoch = header.hub_id, header.epoch
        self.db.execute("BEGIN IMMEDIATE")
        row = self.db.execute("SELECT mark FROM marks WHERE hub_id = ? AND epoch = ?", (hub, epoch)).fetchone()
        mark = row[0] if row else 0
        if header.first_seq > mark + 1:
            self.db.execute("ROLLBACK")
            return 409, self._ack(AckStatus.GAP, hub, epoch, mark, header.first_seq, header.last_seq, data)
        self.db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                            [(hub, epoch, r.seq, type(r).__name__, to_json(r).decode()) for r in records])
        new_mark = max(mark, header.last_seq)
        self.db.execute("INSERT INTO marks VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET mark = excluded.mark",
                        (hub, epoch, new_mark))
        self.db.execute("COMMIT")
        st = AckStatus.STORED if header.last_seq > mark else AckStatus.DUPLICATE
        return 200, self._ack(st, hub, epoch, new_mark, header.first_seq, header.last_seq, data)

    def _ack(self, st: AckStatus, hub: str, epoch: int, mark: int, first: int, last: int, data: bytes) -> bytes:
        return sign_ack(Ack(st, hub, epoch, mark, first, last, batch_digest(data), 0), self.signing)

    def import_export(self, data: bytes) -> list[int]:
        """Import a hand-carried export file (docs/protocol.md §7); returns each batch's status."""
        return [self.ingest(batch)[0] for batch in read_export(data)]

    def records(self, hub_id: str) -> list[tuple[int, int, str, str]]:
        """(epoch, seq, type, json) of every stored record of a hub, in order."""
        with self._lock:
            return self.db.execute("SELECT epoch, seq, type, json FROM records WHERE hub_id = ? ORDER BY epoch, seq",
                                   (hub_id,)).fetchall()
