"""Stored HL7 messages -> ``results`` rows and patient identifiers, transactionally.

:class:`Hl7Processor` takes accepted, unprocessed rows of ``hl7_inbound`` in arrival order
and, for each, in the SAME transaction: matches the patient (:mod:`cloud.integration.matching`
rules, for a whole group at once through :mod:`cloud.integration.lookups`), writes what the
message means and marks the row processed. Up to ``BATCH`` messages share one transaction,
its commit and a handful of statements (claim, patient lookups, result rows, work list,
marks), applied in arrival order so a later message of the same patient sees what an
earlier one did. Everything that needs no database (parsing, result rows, keyed HMACs:
:mod:`cloud.integration.hl7_read`) is done before the transaction, for the next groups while
the previous one is in the database: in reader processes when the processor has them
(:mod:`cloud.integration.read_workers`), else in between. On PostgreSQL this runs in a
process of its own (:mod:`cloud.integration.hl7_process`), with reader processes. A crash
anywhere before COMMIT leaves the rows unprocessed and they are done again; result rows are
keyed ``hl7:<message uid>:<n>`` (unique), so nothing is written twice.

* ORU^R01 and OUL^R22/R24: one ``results`` row per result OBX (``kind`` = hpv / cytology / pathology / lab,
  ``code`` = LOINC, directly or through ``[mllp] code_map``, else ``system:local``), the
  subject by national ID in PID-3, else by the MRN learned from ADT. Unmatched: the rows
  are stored with no subject and the message goes on the ``unmatched`` work list.
* ADT^A01/A04/A08: the subject (by national ID, by MRN, else a new one) learns the MRN;
  waiting work-list items naming that MRN or national ID are resolved at once.
* ADT^A40: the MRG-1 patient is merged into the PID patient through the patient index
  (:func:`cloud.records.patients.merge`, audited, reversible) in the SAME transaction as the rest
  of the message: a crash or a failure leaves neither the merge nor the message done;
  a repeated A40 finds the merge done.

A message that no longer parses, or hits a bug, is marked with the reason (kept, shown on
the dashboard, re-processable); a database outage leaves it pending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any

from cloud.db.engine import Database, Tx
from cloud.errors import DatabaseError, PatientIndexError
from cloud.integration import matching
from cloud.integration.hl7_read import RESULT_COLUMNS, Item, read_message
from cloud.integration.lookups import Lookups
from cloud.integration.matching import Who
from cloud.integration.read_workers import ReadWorkers
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.processing import Processed
from cloud.mllp.store import StoredMessage
from cloud.records import patients
from cloud.records.crypto_at_rest import AtRest
from protocol.hl7.codemap import CodeMap
from protocol.hl7.errors import Hl7Error
from protocol.hl7.message import RESULT_TYPES
from protocol.ids import now_ms

log = logging.getLogger("mchub.cloud.integration.inbound")
_INSERT_RESULT = (
    "INSERT INTO results (subject_id, source, source_key, kind, code, value, unit, observed_ms, payload, "
    "created_ms, origin) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (source_key) DO NOTHING")
_INSERT_RESULTS_PG = """
INSERT INTO results (subject_id, source, source_key, kind, code, value, unit, observed_ms, payload, created_ms, origin)
SELECT r.subject_id, r.source, r.source_key, r.kind, r.code, r.value, r.unit, r.observed_ms, r.payload, r.created_ms,
       r.origin
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bigint[],
            $9::text[], $10::bigint[], $11::text[]) WITH ORDINALITY
     AS r(subject_id, source, source_key, kind, code, value, unit, observed_ms, payload, created_ms, origin, n)
ORDER BY r.n
ON CONFLICT (source_key) DO NOTHING"""
#: the claim also says which messages have result rows already (processed before, queued again from the
#: message browser): only then can a row conflict, and only then is the group written with ON CONFLICT
_CLAIM_PG = ("SELECT h.uid, EXISTS (SELECT 1 FROM results r WHERE r.origin = 'hl7:' || h.uid) AS again "
             "FROM hl7_inbound h WHERE h.uid = ANY($1::text[]) AND h.processed_ms IS NULL ORDER BY h.id "
             "FOR UPDATE OF h")
_CLAIM_ONE = "SELECT uid, 1 AS again FROM hl7_inbound WHERE uid = $1 AND processed_ms IS NULL"
_MARK = "UPDATE hl7_inbound SET processed_ms = $1, process_error = $2 WHERE uid = $3"
#: a processed message's mark, with whom it named as keyed HMACs only (the message browser finds it by
#: ID number or name: migration 16)
_DONE = ("UPDATE hl7_inbound SET processed_ms = $1, process_error = NULL, patient_index = $2, name_index = $3 "
         "WHERE uid = $4")
_DONE_PG = ("UPDATE hl7_inbound AS h SET processed_ms = $1, process_error = NULL, patient_index = d.pi, "
            "name_index = d.ni FROM unnest($2::text[], $3::text[], $4::text[]) AS d(uid, pi, ni) WHERE h.uid = d.uid")
BATCH = 200  #: messages per processing transaction
GATHER_BELOW = 50  #: a round that found fewer messages waits ``gather_s`` before the next (Hl7Processor.run)
GATHER_POLL_S = 0.05  #: during that wait, how often to look whether ``GATHER_BELOW`` messages are waiting
READ_HERE_BELOW = 50  #: a round with fewer messages is read in the processor, not by its reader processes
YIELD_EVERY = 16  #: messages parsed between two turns of the event loop (about 4 ms of CPU)


def who_of(p: Processed) -> Who:
    """The patient keys of a processed message as the matcher needs them."""
    k = p.patient
    return Who(national_id=k.national_id, mrn=k.mrn or "", mrn_authority=k.mrn_authority, name=k.name, sex=k.sex,
               birth_date=k.birth_date)


def _people(p: Processed) -> list[Who]:
    """Every patient key a message names (its patient, and for A40 the identifiers merged away)."""
    return [who_of(p), *(Who(mrn=i.id, mrn_authority=i.authority) for i in p.merge_prior)]


async def _claim(tx: Tx, uids: list[str]) -> dict[str, bool]:
    """Lock the rows of ``uids`` not processed yet (two owners by mistake never process one twice):
    uid -> whether the message may have result rows already (``_CLAIM_PG``; always on SQLite)."""
    if tx.dialect == "postgres":
        rows = await tx.fetch(_CLAIM_PG, uids)
    else:
        rows = [r for u in uids for r in await tx.fetch(_CLAIM_ONE, u)]
    return {r["uid"]: bool(r["again"]) for r in rows}


async def _write(tx: Tx, lookups: Lookups, rows: list[tuple[Any, ...]], fresh: bool) -> None:
    """The result rows and the matching writes gathered so far, in arrival order.

    ``fresh``: none of the group's messages has result rows yet (they are locked by the claim,
    and only their own processing writes rows under their origin), so nothing can conflict and
    PostgreSQL takes them by ``COPY``; else one ``INSERT ... ON CONFLICT DO NOTHING``."""
    if rows and tx.dialect == "postgres" and fresh:
        await tx.copy_rows("results", RESULT_COLUMNS, rows)
    elif rows and tx.dialect == "postgres":  # one statement for the whole group, in arrival order
        await tx.execute(_INSERT_RESULTS_PG, *(list(column) for column in zip(*rows, strict=True)))
    elif rows:
        await tx.executemany(_INSERT_RESULT, rows)
    rows.clear()
    await lookups.flush()


async def _mark_done(tx: Tx, done: list[tuple[str, str | None, str | None]]) -> None:
    """Mark ``(uid, patient_index, name_index)`` processed, one statement for the group on PostgreSQL."""
    if not done:
        return
    if tx.dialect == "postgres":
        await tx.execute(_DONE_PG, now_ms(), *(list(column) for column in zip(*done, strict=True)))
    else:
        await tx.executemany(_DONE, [(now_ms(), pi, ni, uid) for uid, pi, ni in done])


class Hl7Processor:
    """Processes ``hl7_inbound`` into the cloud tables (run by the integration owner process)."""

    def __init__(self, db: Database, store: Hl7Store, at_rest: AtRest, codes: CodeMap | None = None,
                 readers: ReadWorkers | None = None) -> None:
        self.db = db
        self.store = store
        self.at_rest = at_rest
        self.codes = codes or CodeMap()
        self.readers = readers  #: reader processes (cloud.integration.read_workers); None: read here
        self.processed = 0

    def read(self, m: StoredMessage) -> Item:
        """Parse and interpret one message and build its result rows: CPU only, no database.

        Done outside the transaction (and while the previous group commits), so a group's
        transaction holds only the lookups and the writes."""
        return read_message(m, self.codes, self.at_rest)

    async def _read_all(self, pending: list[StoredMessage], batch: int) -> AsyncGenerator[Item, None]:
        """``pending`` read, in order: by the reader processes when there are some (all batches
        handed to them at once, so they read ahead of the groups being applied), else here; a
        round smaller than ``READ_HERE_BELOW`` (messages arriving one by one) is read here too:
        one group, nothing to overlap, and two process wake-ups saved."""
        if self.readers is None or len(pending) < READ_HERE_BELOW:
            for n, m in enumerate(pending, 1):
                if n % YIELD_EVERY == 0:  # the listener may share this event loop: its ACKs do not wait for a group
                    await asyncio.sleep(0)
                yield self.read(m)
            return
        reads = [self.readers.submit(pending[i:i + batch]) for i in range(0, len(pending), batch)]
        try:
            for read in reads:
                for item in await read:
                    yield item
        finally:
            for read in reads:
                read.cancel()

    async def run_once(self, limit: int = BATCH * 2, batch: int = BATCH) -> int:
        """Process up to ``limit`` pending messages; returns how many.

        Messages are applied ``batch`` at a time in ONE transaction (one commit, one fsync, a
        handful of statements for the whole group: see :mod:`cloud.integration.lookups`); an
        A40 goes alone (its merge runs first). Groups are applied one after the other, in
        arrival order; the next group is read (parsed, its rows built) while the previous one
        is in the database. If anything but a database outage fails inside a group, the group
        rolls back and its messages are processed one by one, so only the bad one is marked failed.
        """
        pending = await self.store.fetch_pending(limit)
        group: list[Item] = []
        inflight: asyncio.Task[None] | None = None  # the group in the database now

        async def hand_over(items: list[Item]) -> None:
            nonlocal inflight
            if inflight is not None:  # groups apply in arrival order: the previous one first
                task, inflight = inflight, None
                await task
            if items:
                inflight = asyncio.create_task(self._apply_group(items))

        items = self._read_all(pending, batch)
        try:
            async for item in items:
                if isinstance(item.processed, Processed) and item.processed.message_type == "ADT^A40":
                    await hand_over(group)
                    await hand_over([])
                    group = []
                    await self._apply_group([item])
                    continue
                group.append(item)
                if len(group) >= batch:
                    await hand_over(group)
                    group = []
            await hand_over(group)
            await hand_over([])
        finally:
            await items.aclose()
            if inflight is not None:  # leaving early (an outage): never leave a group running unobserved
                with contextlib.suppress(Exception):
                    await inflight
        return len(pending)

    async def _apply_group(self, group: list[Item]) -> None:
        if not group:
            return
        try:
            await self._commit_group(group)
        except DatabaseError:
            raise
        except Exception:  # one bad message must not take the others down: again, one by one
            if len(group) > 1:
                log.warning("HL7 batch of %d failed; processing its messages one by one", len(group), exc_info=True)
            for item in group:
                await self._alone(item)

    async def _alone(self, item: Item) -> None:
        try:
            await self._commit_group([item])
        except DatabaseError:
            raise
        except Exception as exc:  # a bug must not block the queue: keep the message, say why
            log.exception("HL7 message %s: processing failed", item.message.id)
            await self.store.mark_processed(item.message.id, f"internal: {type(exc).__name__}: {exc}"[:500])

    async def _commit_group(self, group: list[Item]) -> None:
        """Claim, match, write and mark a group of messages in one transaction, in arrival order."""
        async with self.db.transaction() as tx:
            claimed = await _claim(tx, [i.message.id for i in group])
            todo = [i for i in group if i.message.id in claimed]
            fresh = not any(claimed.values())
            for item in todo:  # an A40 is alone in its group (run_once, process): its merge comes first
                if isinstance(item.processed, Processed) and item.processed.message_type == "ADT^A40":
                    await self._merge(tx, item.processed)
            lookups = await Lookups.load(tx, self.at_rest, (w for i in todo if isinstance(i.processed, Processed)
                                                             for w in _people(i.processed)))
            rows: list[tuple[Any, ...]] = []
            done: list[tuple[str, str | None, str | None]] = []
            for item in todo:
                m, p = item.message, item.processed
                if isinstance(p, Hl7Error):
                    log.warning("HL7 message %s cannot be processed: %s", m.id, p)
                    await tx.execute(_MARK, now_ms(), f"{p.reason}: {p}", m.id)
                    continue
                await self._apply(tx, lookups, rows, item, p, fresh)
                done.append((m.id, item.patient_index, item.name_index))
            await _write(tx, lookups, rows, fresh)
            await _mark_done(tx, done)
        self.processed += len(done)

    async def _apply(self, tx: Tx, lookups: Lookups, rows: list[tuple[Any, ...]], item: Item,
                     p: Processed, fresh: bool) -> None:
        if p.message_type.split("^", 1)[0] in RESULT_TYPES:
            await self._results(lookups, rows, item, p)
        else:
            if lookups.names_waiting(_people(p)):  # it resolves items of this group: they go to the database first
                await _write(tx, lookups, rows, fresh)
            await self._adt(tx, lookups, p)
        for w in p.warnings:
            log.info("HL7 message %s (%s): %s", item.message.id, p.control_id, w)

    async def run(self, stop: asyncio.Event, gather_s: float = 0.2, limit: int = BATCH * 5) -> None:
        """Process until ``stop`` is set; a database outage is waited out.

        While messages arrive faster than ``GATHER_BELOW`` per round, rounds follow each other
        at once (each round's groups hold what arrived during the previous one: a burst is
        worked off as it comes). Otherwise the processor waits ``gather_s`` before looking
        again, so messages arriving one by one (a HIS sending lock-step) are processed in
        groups rather than one transaction (and one fsync) each, competing with the listener:
        results trail the ACK by at most about ``gather_s`` plus one group's work. The wait
        ends early once ``GATHER_BELOW`` messages are waiting (looked at every
        ``GATHER_POLL_S``): a burst starting during it is not left a whole ``gather_s`` behind.
        """
        while not stop.is_set():
            try:
                busy = await self.run_once(limit)
                if busy < GATHER_BELOW:
                    await self._gather(stop, gather_s)
            except DatabaseError as exc:
                log.warning("HL7 processing paused, database unavailable: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), gather_s)

    async def _gather(self, stop: asyncio.Event, gather_s: float) -> None:
        """Wait up to ``gather_s`` for messages to gather, less once ``GATHER_BELOW`` are waiting."""
        deadline = asyncio.get_running_loop().time() + gather_s
        while (left := deadline - asyncio.get_running_loop().time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(GATHER_POLL_S, left))
            if stop.is_set() or await self.store.pending_at_least(GATHER_BELOW):
                return

    async def process(self, m: StoredMessage) -> None:
        """Process one stored message in its own transaction (see the module docstring)."""
        item = self.read(m)
        if isinstance(item.processed, Hl7Error):
            exc = item.processed
            log.warning("HL7 message %s cannot be processed: %s", m.id, exc)
            await self.store.mark_processed(m.id, f"{exc.reason}: {exc}")
            return
        await self._alone(item)

    async def _results(self, lookups: Lookups, rows: list[tuple[Any, ...]], item: Item, p: Processed) -> None:
        who = who_of(p)
        sid = await lookups.find(who)
        if sid is not None and who.national_id and who.mrn:
            await lookups.learn_mrn(sid, who.mrn_authority, who.mrn, "hl7:ORU")
        rows.extend((sid, *r) for r in item.rows)
        if sid is None:
            m = item.message
            lookups.add_unmatched("hl7", m.id, who, f"{p.message_type} {p.control_id}: {len(item.rows)} result(s)")
            log.info("HL7 message %s (%s): patient not known yet, on the unmatched list", m.id, p.control_id)

    async def _adt(self, tx: Tx, lookups: Lookups, p: Processed) -> None:
        who = who_of(p)
        actor = f"hl7:{p.message_type}"
        sid = await lookups.find(who)
        if sid is None:
            sid = await matching.anonymous_subject(tx, self.at_rest, who)
        await lookups.learn_mrn(sid, who.mrn_authority, who.mrn, actor)
        for prior in p.merge_prior:  # A40: the old MRN now names the survivor too
            await lookups.learn_mrn(sid, prior.authority, prior.id, actor)
        resolved = 0
        for named in (who, *(Who(mrn=i.id, mrn_authority=i.authority) for i in p.merge_prior)):
            if lookups.may_be_waiting(named):  # read for the whole group (Lookups.load): no query per ADT
                resolved += await matching.resolve_waiting(tx, sid, self.at_rest, named, actor=actor)
        if resolved:
            log.info("%s %s resolved %d waiting item(s)", p.message_type, p.control_id, resolved)

    async def _merge(self, tx: Tx, p: Processed) -> None:
        """A40: merge the MRG-1 subject(s) into the PID subject, in the message's processing transaction."""
        who = who_of(p)
        target = await matching.find(tx, self.at_rest, who)
        if target is None:
            target = await matching.anonymous_subject(tx, self.at_rest, who)
            await matching.learn_mrn(tx, target, who.mrn_authority, who.mrn, "hl7:ADT^A40")
        priors = [await matching.by_mrn(tx, i.authority, i.id) for i in p.merge_prior]
        for prior in sorted({s for s in priors if s is not None and s != target}):
            try:
                await patients.merge(tx, target, prior, actor="hl7:ADT^A40", reason=f"ADT^A40 {p.control_id}")
            except PatientIndexError as exc:  # a repeat (another A40 for the same pair): already merged
                log.info("A40 %s: merge of subject %s not repeated: %s", p.control_id, prior, exc)
