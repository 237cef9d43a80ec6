"""Receiving one sealed batch: the checks of docs/protocol.md §3 in order, then the store.

:class:`Ingestor` is transport-free: the HTTP endpoint and ``mchub cloud import`` both
call :meth:`Ingestor.handle` with the batch bytes and send back the :class:`Answer`.

Every refusal is counted (``mchub_rejects_total{reason}``). A refusal of a batch whose
signature verified (``wrong_recipient``, ``tampered_ciphertext``, ``invalid_record``), and every refusal of
``mchub cloud import``, is written to the audit log with the hub id; the HTTP refusals of
unproven senders are counted by :mod:`cloud.audit.refusals` as aggregated rows instead,
so a flood cannot grow the audit log without bound. The HTTP endpoint takes an ingest
slot (:meth:`Ingestor.admitted`) before reading the body and checks the header and the
hub it names (:meth:`Ingestor.check_header`) before reading the rest. A hub's batches sent
ahead on parallel connections are stored in seq order (:mod:`cloud.intake.sync_order`). A record that does not
validate is refused on its own (cloud/intake/validate.py): the rest of the batch is stored, the record
is kept in ``refused_records`` and the ack names it (docs/protocol.md §3.1). Duplicates and replays are answered
200 with ack status 1, counted and audited inside the store transaction. An accepted batch
that came over HTTP also marks its hub online, keeps its configuration report and reads
its configuration version in that same transaction (one commit per ack).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud import audit
from cloud.db.engine import Database
from cloud.db.migrations import PartitionCache
from cloud.db.pg_ingest import SignerRefused, store_batch_pg
from cloud.errors import DatabaseError, DatabaseUnavailable
from cloud.fleet import presence
from cloud.fleet.presence import Report
from cloud.fleet.registry import lookup_signer
from cloud.intake.keystore import CloudKeys
from cloud.intake.sync_order import SeqOrder
from cloud.intake.sync_store import (
    Outcome,
    StoreResult,
    may_hold_refusals,
    record_refusals,
    refused_between,
    store_batch,
)
from cloud.intake.validate import InvalidRecord, Refusal, check_columns
from cloud.records.crypto_at_rest import AtRest
from cloud.server import metrics
from protocol.ack import Ack, AckStatus, batch_digest, sign_ack
from protocol.batch import Columns
from protocol.envelope import BatchHeader, open_columns, parse_header
from protocol.errors import EnvelopeError
from protocol.ids import now_ms
from webui.log_limit import LogLimit

log = logging.getLogger("mchub.cloud.ingest")
ACK_TYPE = "application/vnd.mchub.ack"
BATCH_TYPE = "application/vnd.mchub.batch"

_STATUS = {"malformed": 400, "unsupported_version": 400, "unknown_suite": 400, "bad_body": 400,
           "tampered_ciphertext": 400, "invalid_record": 400, "bad_signature": 401, "unknown_key": 401,
           "wrong_recipient": 401, "revoked": 403, "unknown_hub": 403, "too_large": 413, "overloaded": 503,
           "unavailable": 503, "internal": 500}
#: refusals raised once the batch's signature verified (inside open_columns): audited one
#: entry each (a known hub's fault), like any refusal after the signature (e.g. revoked
#: since its key was cached); every other HTTP refusal is counted by cloud.audit.refusals
AUTHENTICATED_REFUSALS = frozenset({"wrong_recipient", "tampered_ciphertext", "invalid_record"})
for _reason in _STATUS:  # every reason on /metrics from the start, at 0, so dashboards and alerts see it
    metrics.REJECTS.labels(_reason)


@dataclass
class Answer:
    """What to send back: HTTP status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    reason: str | None = None  #: reason code for refusals; None for 200 and 409
    headers: dict[str, str] = field(default_factory=dict)
    new_readings: int = 0
    refused: int = 0  #: records of the batch refused one by one (named in the ack)
    audited: bool = False  #: the refusal has its own audit entry (else the HTTP tally counts it)
    hub_id: str | None = None  #: for refusals: the hub the batch's header named, when it could be read
    config_version: int | None = None  #: 200 to a batch with a presence report: the hub's configuration version


class _Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _signer_refused(reason: str, header: BatchHeader) -> _Refused:
    if reason == "unknown_hub":
        return _Refused(reason, f"hub {header.hub_id!r} is not enrolled")
    if reason == "revoked":
        return _Refused(reason, f"hub {header.hub_id!r} is revoked; stop syncing and call the administrator")
    return _Refused(reason, f"key {header.signer_key_id.hex()} is not a valid key of hub {header.hub_id!r}; "
                            "re-enroll or rotate the key")


#: the batches announced by their header during the current admission (:meth:`Ingestor.admitted`):
#: in progress for :mod:`cloud.intake.sync_order` until the answer is made, while the rest of the body is read
_ADMISSION: contextvars.ContextVar[contextlib.ExitStack | None] = contextvars.ContextVar("mchub_admission",
                                                                                         default=None)

#: verified hub keys a worker remembers (PostgreSQL; each batch's transaction re-checks the
#: hub and the key, so a revocation takes effect at once); ~200 bytes each
KEY_CACHE_SIZE = 100_000


@dataclass
class Limits:
    """Per-worker limits (from [server])."""

    max_batch_bytes: int = 32 << 20
    max_inflight: int = 32
    max_queue: int = 256
    retry_after_s: int = 5


class Ingestor:
    """Checks, opens and stores batches for one worker process."""

    def __init__(self, db: Database, keys: CloudKeys, limits: Limits | None = None) -> None:
        self.db = db
        self.keys = keys
        self.limits = limits or Limits()
        self.at_rest = AtRest(keys.at_rest, keys.blind_index)
        self._slots = asyncio.Semaphore(self.limits.max_inflight)
        self._waiting = 0
        self._partitions = PartitionCache()
        self._order = SeqOrder()  #: a hub's pipelined batches wait for the earlier ones here, not a 409
        self._seen: set[tuple[str, str, str]] = set()  #: stations and devices known to be stored
        self._keys: dict[tuple[str, bytes], Ed25519PublicKey] = {}  #: (hub, key id) -> verified key
        self._refusal_log = LogLimit(60.0)  #: unproven refusals: a line per reason a minute (the tally counts all)

    def refusal(self, reason: str, message: str) -> Answer:
        """A JSON refusal answer for ``reason``."""
        body = msgspec.json.encode({"reason": reason, "message": message})
        headers = {"Retry-After": str(self.limits.retry_after_s)} if reason in {"overloaded", "unavailable"} else {}
        return Answer(_STATUS[reason], body, reason=reason, headers=headers)

    def _ack(self, status: AckStatus, header: BatchHeader, data: bytes, through: int,
             refused: tuple[tuple[int, str], ...] = ()) -> bytes:
        return sign_ack(Ack(status, header.hub_id, header.epoch, through, header.first_seq, header.last_seq,
                            batch_digest(data), now_ms(), refused), self.keys.signing)

    def overloaded(self) -> Answer:
        """The answer when the ingest queue is full (503, Retry-After)."""
        metrics.REJECTS.labels("overloaded").inc()
        return self.refusal("overloaded", "the server is busy; retry after the given seconds")

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[bool]:
        """Hold an ingest slot (waiting in the queue for one); yields False, at once, when the
        queue is full (answer :meth:`overloaded`). The HTTP endpoint enters this before it
        reads a byte of the body, so ``max_inflight`` bounds the bodies held in memory."""
        if self._waiting >= self.limits.max_queue:
            yield False
            return
        self._waiting += 1
        metrics.WAITING.inc()
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
            metrics.WAITING.dec()
        try:
            with metrics.INFLIGHT.track_inprogress(), contextlib.ExitStack() as held:
                token = _ADMISSION.set(held)
                try:
                    yield True
                finally:
                    _ADMISSION.reset(token)
        finally:
            self._slots.release()

    async def handle(self, data: bytes, *, source: str = "http", peer: str = "") -> Answer:
        """Answer one batch (never raises for bad input)."""
        async with self.admitted() as admitted:
            if not admitted:
                return self.overloaded()
            return await self.handle_admitted(data, source=source, peer=peer)

    async def handle_admitted(self, data: bytes, *, source: str = "http", peer: str = "",
                              seen: Report | None = None) -> Answer:
        """:meth:`handle` inside :meth:`admitted`. With ``seen`` (the HTTP endpoint: what the
        batch's headers report), an accepted batch also marks its hub online in its store
        transaction (:func:`cloud.fleet.presence.on_batch`) and the answer carries the hub's
        configuration version."""
        started = time.perf_counter()
        answer = await self._handle(data, source, peer, seen)
        metrics.LATENCY.observe(time.perf_counter() - started)
        return answer

    async def check_header(self, prefix: bytes, total_len: int, *, source: str = "http",
                           peer: str = "") -> Answer | None:
        """Before the rest of a batch is read: its declared size, its clear header (from the
        first ``HEADER_PREFIX_MAX`` bytes) and the hub and key it names. A refusal, or None
        to read on. A body from nobody the cloud knows is refused after a few hundred bytes."""
        header: BatchHeader | None = None
        try:
            if total_len > self.limits.max_batch_bytes:
                raise _Refused("too_large", f"batch of {total_len} bytes exceeds the limit of "
                                            f"{self.limits.max_batch_bytes}; split it")
            header = parse_header(prefix, self.limits.max_batch_bytes, total_len=total_len)
            await self._signer(header)
            if (held := _ADMISSION.get()) is not None:  # in progress from now: its successors wait for it
                held.enter_context(self._order.in_progress(header.hub_id, header.epoch, header.first_seq))
        except (_Refused, EnvelopeError) as exc:
            return await self._refuse(exc.reason, str(exc), header, source, peer)
        except DatabaseUnavailable as exc:
            log.warning("database unavailable while checking a batch header: %s", exc)
            metrics.REJECTS.labels("unavailable").inc()
            return self.refusal("unavailable", "the database is unavailable; retry later")
        except DatabaseError as exc:
            log.error("database error while checking a batch header: %s", exc)
            metrics.REJECTS.labels("internal").inc()
            return self.refusal("internal", "the server could not check the batch; it will be retried")
        return None

    async def _handle(self, data: bytes, source: str, peer: str, seen: Report | None) -> Answer:
        header: BatchHeader | None = None
        verified = False
        try:
            if len(data) > self.limits.max_batch_bytes:
                raise _Refused("too_large", f"batch of {len(data)} bytes exceeds the limit of "
                                            f"{self.limits.max_batch_bytes}; split it")
            header = parse_header(data, self.limits.max_batch_bytes)
            with self._order.in_progress(header.hub_id, header.epoch, header.first_seq):
                cols, refusals = check_columns(await self._open(data, header))
                verified = True  # the hub's signature holds: later refusals are a known hub's, audited one by one
                await self._partitions.ensure(self.db, cols.at)
                actor = f"hub:{header.hub_id}" if source == "http" else f"{source}:{header.hub_id}"
                await self._order.after_earlier(header.hub_id, header.epoch, header.first_seq)
                if self.db.dialect == "postgres":  # one round trip: the transaction runs inside the server
                    result = await self._store_pg(header, cols, actor, refusals, seen)
                else:
                    async with self.db.transaction() as tx:
                        now = now_ms()
                        result = await store_batch(tx, header, cols.records(), self.at_rest, now, actor, self._seen)
                        await record_refusals(tx, header, refusals, result, now, actor)
                        if seen is not None and result.outcome is not Outcome.GAP:
                            result = replace(result, config_version=await presence.on_batch(tx, header.hub_id,
                                                                                            seen, now))
            refused = await refused_between(self.db, header) if may_hold_refusals(header, refusals, result) else ()
        except (_Refused, EnvelopeError, InvalidRecord) as exc:
            return await self._refuse(exc.reason, str(exc), header, source, peer, verified)
        except DatabaseUnavailable as exc:
            log.warning("database unavailable while storing a batch: %s", exc)
            metrics.REJECTS.labels("unavailable").inc()
            return self.refusal("unavailable", "the database is unavailable; retry later")
        except DatabaseError as exc:
            log.error("database error while storing a batch from %s: %s", header and header.hub_id, exc)
            metrics.REJECTS.labels("internal").inc()
            return self.refusal("internal", "the server could not store the batch; it will be retried")
        self._seen |= result.first_seen  # only after COMMIT: a rolled-back insert is retried next time
        metrics.BATCHES.labels(result.outcome.value).inc()
        if result.outcome is Outcome.GAP:
            return Answer(409, self._ack(AckStatus.GAP, header, data, result.acked_through), ACK_TYPE)
        metrics.RECORDS.inc(result.new_records)
        metrics.READINGS.inc(result.new_readings)
        status = AckStatus.STORED if result.outcome is Outcome.STORED else AckStatus.DUPLICATE
        if refused:
            if result.outcome is Outcome.STORED:
                metrics.REJECTS.labels("invalid_record").inc(len(refusals))
            log.warning("records refused one by one: hub=%s %s", header.hub_id,
                        ", ".join(f"{seq}:{why}" for seq, why in refused[:20]),
                        extra={"fields": {"event": "record.refused", "hub_id": header.hub_id, "count": len(refused)}})
        return Answer(200, self._ack(status, header, data, result.acked_through, refused), ACK_TYPE,
                      new_readings=result.new_readings, refused=len(refused),
                      config_version=result.config_version if seen is not None else None)

    async def _open(self, data: bytes, header: BatchHeader) -> Columns:
        _, cols = open_columns(data, signer=await self._signer(header), recipients=self.keys.recipients,
                               max_body=self.limits.max_batch_bytes, max_plain=4 * self.limits.max_batch_bytes)
        return cols

    async def _signer(self, header: BatchHeader) -> Ed25519PublicKey:
        """The hub's public key named by the header; PostgreSQL: cached (the store re-checks it)."""
        cached = (header.hub_id, header.signer_key_id)
        if self.db.dialect == "postgres" and (key := self._keys.get(cached)) is not None:
            return key
        signer = await lookup_signer(self.db, header.hub_id, header.signer_key_id, now_ms())
        if signer.hub_status is None:
            raise _signer_refused("unknown_hub", header)
        if signer.hub_status != "active":
            raise _signer_refused("revoked", header)
        if signer.public_key is None:
            raise _signer_refused("unknown_key", header)
        if self.db.dialect == "postgres":
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[cached] = signer.public_key
        return signer.public_key

    async def _store_pg(self, header: BatchHeader, cols: Columns, actor: str,
                        refusals: list[Refusal], seen: Report | None) -> StoreResult:
        try:
            return await store_batch_pg(self.db, header, cols, self.at_rest, now_ms(), actor, refusals, seen)
        except SignerRefused as exc:  # revoked or expired since the key was cached
            self._keys.pop((header.hub_id, header.signer_key_id), None)
            raise _signer_refused(exc.reason, header) from None

    async def _refuse(self, reason: str, message: str, header: BatchHeader | None, source: str,
                      peer: str, verified: bool = False) -> Answer:
        metrics.REJECTS.labels(reason).inc()
        metrics.BATCHES.labels("refused").inc()
        hub = header.hub_id if header else None
        unproven = source == "http" and not verified and reason not in AUTHENTICATED_REFUSALS
        if unproven and (skipped := self._refusal_log.due(reason)) is None:
            return self._claimed(self.refusal(reason, message), hub)  # the tally counts it; a log line a minute
        more = f" (+{skipped} more in the last minute; counted in the audit tally)" if unproven and skipped else ""
        log.warning("batch refused: %s (%s) hub=%s source=%s peer=%s%s", reason, message, hub, source, peer, more,
                    extra={"fields": {"event": "batch.refused", "reason": reason, "hub_id": hub, "source": source,
                                      "peer": peer}})
        if unproven:  # nobody proved who sent it: counted by the HTTP layer's RefusalTally (aggregated rows)
            return self._claimed(self.refusal(reason, message), hub)
        detail: dict[str, object] = {"source": source, "peer": peer, "message": message[:300]}
        if header is not None:
            detail.update(epoch=header.epoch, first_seq=header.first_seq, last_seq=header.last_seq,
                          signer_key_id=header.signer_key_id.hex())
        try:
            async with self.db.transaction() as tx:
                await audit.write(tx, actor=f"{source}:{peer or hub or '?'}", action="batch.refused",
                                  outcome="refused", hub_id=hub, reason=reason, detail=detail)
        except DatabaseError as exc:
            log.error("could not write the audit entry for a refused batch: %s", exc)
        answer = self._claimed(self.refusal(reason, message), hub)
        answer.audited = True
        return answer

    @staticmethod
    def _claimed(answer: Answer, hub: str | None) -> Answer:
        answer.hub_id = hub
        return answer

