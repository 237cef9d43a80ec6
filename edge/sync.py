"""Sync client: ships the record stream to the cloud, strictly in seq order (docs/protocol.md §2).

Crash safety comes from one rule: the only sync state is ``acked_through`` in hub.db,
written *after* a verified, signed ack and never moved by anything else. Whatever step
the hub dies at, on restart it resends from ``acked_through + 1``; the cloud ignores
what it already holds (``ON CONFLICT DO NOTHING``) and answers with its mark, so every
record ends up in the cloud exactly once.

Batching: when records are waiting the client sends at once up to ``batch_max_records``
per batch; after an idle spell it lingers ``linger_ms`` so a burst shares a batch (a new
reading reaches the cloud well within a second). A backlog drains with ``batches_in_flight``
batches on the wire at once, each on its own connection, the next read and sealed in a
thread meanwhile; acks are stored strictly in seq order (the cloud stores a hub's batches
in seq order too and answers 409 to one whose predecessor it does not hold: docs/protocol.md §2).
Failures back off exponentially with jitter; 503 obeys ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.config import SyncConfig
from edge.crashpoints import crashpoint
from edge.errors import EdgeError
from edge.http_post import HttpError, Poster
from edge.identity import Identity
from edge.store import reader as q
from edge.store.reader import Reader
from edge.store.writer import GroupWriter
from protocol import backoff
from protocol.ack import AckStatus, verify_ack
from protocol.envelope import seal
from protocol.errors import AckError
from protocol.ids import now_ms

log = logging.getLogger("edge.sync")
BATCH_TYPE = "application/vnd.mchub.batch"
DEDUP_WINDOW_MS = 7 * 86_400_000  #: how long a device's resend is recognised, at least
#: ... and for at least this many records, whatever the clock says (a jump forward must not forget them)
DEDUP_MIN_SEQS = 50_000
#: faults on this hub (not the cloud's answer): the data is kept and the round retried
LOCAL_FAULTS = (OSError, ValueError, RuntimeError, EdgeError)


@dataclass(frozen=True)
class _Reply:
    """The cloud's answer to one POST (``error``: it never came)."""

    status: int
    body: bytes
    retry_after: str | None
    version: str
    error: str | None = None


@dataclass
class _InFlight:
    """One sealed batch of a round, posted or (``answer`` None) found missing from the store."""

    first: int
    last: int
    count: int
    sealed: bytes
    head: bool  #: posted with every record before it acknowledged
    answer: asyncio.Future[_Reply] | None
    status: int = 0  #: the HTTP status once answered


class SyncClient:
    """One hub's uploader. ``run()`` until cancelled; ``wake()`` to send now."""

    def __init__(self, cfg: SyncConfig, identity: Identity, reader: Reader, writer: GroupWriter,
                 reload_identity: Callable[[], Identity] | None = None, prune_interval_s: float = 60.0,
                 clock: Callable[[], int] = now_ms) -> None:
        assert cfg.url is not None
        self.clock = clock  #: the hub's wall clock (ms), the one that stamps records
        self.cfg = cfg
        self.url = cfg.url + "/api/v1/batches"
        self.identity = identity
        self.reader = reader
        self.writer = writer
        self.reload_identity = reload_identity
        self.prune_interval_s = prune_interval_s
        self.batch_max = cfg.batch_max_records
        self._wake = asyncio.Event()
        self._failures = 0
        self._last_prune = 0.0
        self._use_previous_key = False
        self.state = "starting"
        self.last_success_ms: int | None = None
        self.last_error: str | None = None
        self.sent_records = 0
        self.sent_bytes = 0
        self._mark = 0  #: the stored mark during a round of :meth:`_send`
        #: called with the cloud's configuration version for this hub (enrolled hubs fetch a newer one)
        self.on_config_version: Callable[[int], None] | None = None
        #: extra headers sent with every batch: the configuration push report (docs/edge.md)
        self.report: Callable[[], dict[str, str]] | None = None

    def wake(self) -> None:
        """New records were committed: send soon (not while blocked, e.g. revoked: only sync-now retries)."""
        if self.state != "blocked":
            self._wake.set()

    def block(self, message: str) -> None:
        """Stop sending until ``sync-now`` (e.g. the cloud said this hub is revoked); readings are kept."""
        self._fail(message, block=True)

    def sync_now(self) -> None:
        """Skip any backoff and send at once (command ``sync-now``)."""
        self._failures = 0
        self._wake.set()

    async def _idle(self, seconds: float) -> bool:
        """Wait for a wake-up or the timeout; True when woken."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
        # that arrives as the wait ends, and the hub would then never stop
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        woken = self._wake.is_set()
        self._wake.clear()
        return woken

    async def run(self) -> None:
        """Send until cancelled."""
        http = Poster(self.url, self.cfg.timeout_s, keep=self.cfg.batches_in_flight)
        try:
            lingered = True
            while True:
                st = await asyncio.to_thread(self.reader.state)
                pending = st["next_seq"] - 1 - st["acked_through"]
                if pending <= 0:
                    self.state = "idle"
                    await self._maybe_prune()
                    await self._idle(self.prune_interval_s)
                    lingered = False
                    continue
                if not lingered and pending < self.batch_max and self.cfg.linger_ms:
                    await asyncio.sleep(self.cfg.linger_ms / 1000)
                    lingered = True
                    continue
                try:
                    delay = await self._send(http, st)
                except LOCAL_FAULTS as exc:  # a local fault: keep the data, retry
                    log.exception("sync step failed")
                    delay = self._fail(f"sync failed on this hub: {type(exc).__name__}: {exc}")
                if delay is None:
                    continue
                lingered = True
                await self._idle(delay)
        finally:
            await http.close()

    async def _send(self, http: Poster, st: dict[str, Any]) -> float | None:
        """Send from the mark on, ``batches_in_flight`` batches at a time, and store their acks in
        seq order; returns a delay to wait before the next attempt, or None to go on at once.

        A producer reads and seals batch after batch in a thread and posts each on its own
        connection while a window slot is free; this coroutine takes the answers strictly in
        order. The first answer that is not an ack ends the round: the batches behind it are
        abandoned (the cloud stores a batch only after its predecessor, so none of them can
        be stored past a missing one) and the next round resends from the stored mark.
        """
        window: asyncio.Queue[_InFlight] = asyncio.Queue()
        slots = asyncio.Semaphore(self.cfg.batches_in_flight)
        self._mark = st["acked_through"]
        producer = asyncio.ensure_future(self._produce(http, st, window, slots))
        producer.add_done_callback(lambda t: t.cancelled() or t.exception())  # an abandoned one fails quietly
        try:
            while True:
                get = asyncio.ensure_future(window.get())
                await asyncio.wait({get, producer}, return_when=asyncio.FIRST_COMPLETED)
                if not get.done():  # the producer ended (or failed) with nothing more queued
                    get.cancel()
                    if window.empty():
                        producer.result()  # a local fault surfaces here
                        return None
                    continue
                item = get.result()
                if item.answer is None:
                    return self._fail(f"record {item.first} is no longer stored on this hub; run `mchub edge "
                                      "status` and contact support (the cloud is missing records this hub "
                                      "pruned)", block=True)
                delay = await self._answered(item, await item.answer, st)
                if delay is not None or item.status != 200:
                    return delay
                slots.release()
        finally:
            producer.cancel()
            while not window.empty():
                if (left := window.get_nowait().answer) is not None:
                    left.cancel()

    async def _produce(self, http: Poster, st: dict[str, Any], window: asyncio.Queue[_InFlight],
                       slots: asyncio.Semaphore) -> None:
        """Seal batches from the mark on and post each as a window slot frees (see :meth:`_send`)."""
        first = st["acked_through"] + 1
        while first < st["next_seq"]:
            limit = self.batch_max
            count, last, sealed = await asyncio.to_thread(self._read_and_seal, st, first, limit)
            if not count:
                window.put_nowait(_InFlight(first, first, 0, b"", False, None))
                return
            crashpoint("after_seal")
            await slots.acquire()
            head = first <= self._mark + 1  #: nothing before it unacknowledged: its 409 speaks for the cloud
            if not self._failures:  # a retry after an error stays "backoff" (等待重试) until a batch gets through:
                self.state = "sending"  # "正在同步" in between told a nurse the cloud was back when it was not
            window.put_nowait(_InFlight(first, last, count, sealed, head,
                                        asyncio.ensure_future(self._post(http, sealed))))
            if count < limit:  # the last records there are: the next round picks up newer ones
                return
            first = last + 1

    async def _post(self, http: Poster, sealed: bytes) -> _Reply:
        """POST one sealed batch; a transport failure is a reply with ``error`` set."""
        try:
            headers = {"Content-Type": BATCH_TYPE, **(self.report() if self.report is not None else {})}
            answer = await http.post(sealed, headers, sent=_upload_crashpoint)
            return _Reply(answer.status, answer.body, answer.headers.get("retry-after"),
                          answer.headers.get("x-mchub-config-version", ""))
        except (HttpError, TimeoutError, OSError) as exc:
            return _Reply(0, b"", None, "", f"cloud unreachable: {type(exc).__name__}: {exc}")

    async def _answered(self, item: _InFlight, reply: _Reply, st: dict[str, Any]) -> float | None:
        """Act on the answer to one batch, in seq order; a delay, or None to go on."""
        item.status = reply.status
        if reply.error is not None:
            return self._fail(reply.error)
        status, body, count = reply.status, reply.body, item.count
        if status == 200 and reply.version.isdigit() and self.on_config_version is not None:
            self.on_config_version(int(reply.version))
        if status == 200:
            return await self._accepted(body, item, st)
        if status == 409:
            if not item.head:  # sent before its predecessor's ack: the cloud had not stored that one yet
                log.debug("batch from %d answered 409 behind batches in flight; resending from the mark",
                          item.first)
                return None
            return await self._gap(body, item.sealed)
        if status == 413:
            self.batch_max = max(1, count // 2)
            log.warning("cloud says the batch is too large; sending %d records per batch", self.batch_max)
            return None
        reason = _reason(body)
        if status == 401:
            if self.reload_identity is not None:
                self.identity = self.reload_identity()
            self._use_previous_key = not self._use_previous_key and self.identity.previous is not None
            return self._fail(f"cloud refused the hub's key (401 {reason}); check the hub is registered with "
                              "this key (`mchub edge status` prints it)")
        if status == 403:
            return self._fail(f"cloud refused this hub (403 {reason}): it is revoked or unknown. Readings are kept; "
                              "ask the administrator to enroll the hub again", block=True)
        if status == 503:
            wait = backoff.not_before(_retry_after(reply.retry_after))
            self.last_error = f"cloud busy (503 {reason}); retrying in {wait:.0f} s"
            self.state = "backoff"
            return wait
        return self._fail(f"cloud answered {status} {reason}; the batch is kept and retried")

    def _read_and_seal(self, st: dict[str, Any], first: int, limit: int) -> tuple[int, int, bytes]:
        """(count, last seq, sealed batch) of up to ``limit`` records from ``first`` (in a thread: tens of ms)."""
        records = self.reader.records(first, limit, with_uid=False)  # the batch does not carry uids
        if not records or records[0].seq != first:
            return 0, first, b""
        signer = self.identity.previous if self._use_previous_key and self.identity.previous else self.identity.signer
        return len(records), records[-1].seq, seal(records, hub_id=st["hub_id"], epoch=st["epoch"], signer=signer,
                                                   recipient=self.identity.recipient)

    async def _accepted(self, body: bytes, item: _InFlight, st: dict[str, Any]) -> float | None:
        """Store the ack of ``item`` as far as ``item`` goes: a cloud ahead of the hub (batches sent
        behind it and stored before a crash) answers each of those with its own ack and refusals."""
        try:
            ack = verify_ack(body, self.identity.cloud_signing, item.sealed)
        except AckError as exc:
            return self._fail(f"cloud answer is not a valid ack: {exc}")
        if ack.hub_id != st["hub_id"] or ack.epoch != st["epoch"] or ack.status is AckStatus.GAP:
            return self._fail("cloud ack names another hub, epoch or status")
        crashpoint("after_response")
        through = min(ack.acked_through_seq, item.last)
        mark = self._mark = await self.writer.call(q.store_ack(through, body, now_ms(), ack.refused))
        if ack.refused:
            log.warning("the cloud refused %d record(s) of this batch; they are in the dead-letter list: %s",
                        len(ack.refused), ", ".join(f"seq {seq} ({why})" for seq, why in ack.refused[:10]))
        crashpoint("after_ack_stored")
        self._success(item.count, len(item.sealed))
        if self.batch_max < self.cfg.batch_max_records:
            self.batch_max = min(self.cfg.batch_max_records, self.batch_max * 2)
        log.debug("ack through %d", mark)
        await self._maybe_prune()
        return None

    async def _gap(self, body: bytes, sealed: bytes) -> float | None:
        try:
            ack = verify_ack(body, self.identity.cloud_signing, sealed)
        except AckError as exc:
            return self._fail(f"cloud 409 answer is not a valid ack: {exc}")
        expected = ack.acked_through_seq
        if expected >= self._mark:
            await self.writer.call(q.store_ack(expected, body, now_ms()))
            return None
        kept = await asyncio.to_thread(self.reader.first_kept_seq)
        if kept is None or kept > expected + 1:
            return self._fail(f"the cloud holds records only through {expected} but this hub already pruned "
                              f"from {expected + 1}; restore the cloud or import an export", block=True)
        detail = f"cloud holds records only through {expected} (hub had ack through {self._mark}); resending"
        log.warning("%s", detail)
        await self.writer.call(q.lower_mark(expected, detail, now_ms()))
        return None

    def _success(self, count: int, size: int) -> None:
        self._failures = 0
        self.state = "ok"
        self.last_success_ms = now_ms()
        self.last_error = None
        self.sent_records += count
        self.sent_bytes += size

    def _fail(self, message: str, block: bool = False) -> float:
        self._failures += 1
        if message != self.last_error:
            log.error("sync: %s", message)
        self.last_error = message
        self.state = "blocked" if block else "backoff"
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self.writer.call(q.record_error(message, now_ms())))
        if block:
            return 3600.0
        return backoff.delay(self._failures, initial=min(1.0, self.cfg.max_backoff_s), maximum=self.cfg.max_backoff_s)

    async def _maybe_prune(self) -> None:
        disk_low = self.writer.guard.low
        if not disk_low and time.monotonic() - self._last_prune < self.prune_interval_s:
            return
        self._last_prune = time.monotonic()
        before = self.clock() - (0 if disk_low else int(self.cfg.retention_days * 86_400_000))
        total = 0
        while True:
            n = await self.writer.call(q.prune_chunk(before, 2000))
            total += n
            crashpoint("during_prune")
            if n < 2000:
                break
        window = max(DEDUP_WINDOW_MS, int(self.cfg.retention_days * 86_400_000))
        await self.writer.call(q.prune_seen(self.clock() - window, DEDUP_MIN_SEQS))
        if total:
            log.info("pruned %d synced records older than the retention period", total)


def _upload_crashpoint() -> None:
    crashpoint("during_upload")


def _reason(body: bytes) -> str:
    import json

    try:
        doc = json.loads(body)
        return f"{doc.get('reason', '')}: {doc.get('message', '')}"
    except (ValueError, AttributeError):
        return body[:80].decode("utf-8", "replace")


def _retry_after(value: str | None) -> float:
    try:
        return max(0.1, min(float(value or 5), 3600.0))
    except ValueError:
        return 5.0
