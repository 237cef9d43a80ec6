"""Stored HL7 messages -> ``results`` rows and patient identifiers, transactionally.

:class:`Hl7Processor` takes accepted, unprocessed rows of ``hl7_inbound`` in arrival order
and, for each, in the SAME transaction: matches the patient (:mod:`cloud.integration.matching`),
writes what the message means and marks the row processed (up to 100 messages share one
transaction and its commit). A crash anywhere before COMMIT leaves the rows unprocessed and
they are done again; result rows are keyed ``hl7:<message uid>:<n>`` (unique), so nothing is
written twice.

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
import datetime as dt
import logging
from typing import Any

import msgspec

from cloud.db.engine import Database, Tx
from cloud.errors import DatabaseError, PatientIndexError
from cloud.integration import matching
from cloud.integration.matching import Who
from cloud.mllp.db_store import Hl7Store
from cloud.mllp.processing import Processed, process_message
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
    "created_ms, origin) VALUES ($1, 'hl7', $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (source_key) DO NOTHING")


def who_of(p: Processed) -> Who:
    """The patient keys of a processed message as the matcher needs them."""
    k = p.patient
    return Who(national_id=k.national_id, mrn=k.mrn or "", mrn_authority=k.mrn_authority, name=k.name, sex=k.sex,
               birth_date=k.birth_date)


def _ms(iso: str | None) -> int | None:
    if not iso:
        return None
    try:
        return int(dt.datetime.fromisoformat(iso).timestamp() * 1000)
    except ValueError:
        return None


class Hl7Processor:
    """Processes ``hl7_inbound`` into the cloud tables (run by the integration owner process)."""

    def __init__(self, db: Database, store: Hl7Store, at_rest: AtRest, codes: CodeMap | None = None) -> None:
        self.db = db
        self.store = store
        self.at_rest = at_rest
        self.codes = codes or CodeMap()
        self.processed = 0

    async def run_once(self, limit: int = 200, batch: int = 100) -> int:
        """Process up to ``limit`` pending messages; returns how many.

        Messages are applied ``batch`` at a time in ONE transaction (one commit, one fsync, for
        many messages); an A40 goes alone (its merge runs first, in the patient index's own
        transaction). If anything but a database outage fails inside a batch, the batch rolls
        back and its messages are processed one by one, so only the bad one is marked failed.
        """
        pending = await self.store.fetch_pending(limit)
        group: list[tuple[StoredMessage, Processed | Hl7Error]] = []
        for m in pending:
            try:
                item: Processed | Hl7Error = process_message(m.raw, self.codes)
            except Hl7Error as exc:
                item = exc
            if isinstance(item, Processed) and item.message_type == "ADT^A40":
                await self._apply_group(group)
                group = []
                await self.process(m)
                continue
            group.append((m, item))
            if len(group) >= batch:
                await self._apply_group(group)
                group = []
        await self._apply_group(group)
        return len(pending)

    async def _apply_group(self, group: list[tuple[StoredMessage, Processed | Hl7Error]]) -> None:
        if not group:
            return
        try:
            async with self.db.transaction() as tx:
                for m, item in group:
                    if not await self._claim(tx, m.id):
                        continue
                    if isinstance(item, Hl7Error):
                        log.warning("HL7 message %s cannot be processed: %s", m.id, item)
                        await tx.execute("UPDATE hl7_inbound SET processed_ms = $1, process_error = $2 WHERE uid = $3",
                                         now_ms(), f"{item.reason}: {item}", m.id)
                        continue
                    await self._apply(tx, m, item)
        except DatabaseError:
            raise
        except Exception:  # one bad message must not take the others down: again, one by one
            log.warning("HL7 batch of %d failed; processing its messages one by one", len(group), exc_info=True)
            for m, _ in group:
                await self.process(m)
            return
        self.processed += sum(1 for _, item in group if isinstance(item, Processed))

    async def _apply(self, tx: Tx, m: StoredMessage, p: Processed) -> None:
        if p.message_type.split("^", 1)[0] in RESULT_TYPES:
            await self._results(tx, m, p)
        else:
            await self._adt(tx, p)
        who = p.patient  # whom it named, as keyed HMACs only: the message browser finds it by ID number or name
        await tx.execute("UPDATE hl7_inbound SET processed_ms = $1, process_error = NULL, patient_index = $2, "
                         "name_index = $3 WHERE uid = $4", now_ms(),
                         self.at_rest.blind_index(who.national_id) if who.national_id else None,
                         self.at_rest.name_index(who.name) if who.name else None, m.id)
        for w in p.warnings:
            log.info("HL7 message %s (%s): %s", m.id, p.control_id, w)

    async def run(self, stop: asyncio.Event, idle_s: float = 0.5) -> None:
        """Process until ``stop`` is set; a database outage is waited out."""
        while not stop.is_set():
            try:
                busy = await self.run_once()
            except DatabaseError as exc:
                log.warning("HL7 processing paused, database unavailable: %s", exc)
                busy = 0
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle_s)

    async def process(self, m: StoredMessage) -> None:
        """Process one stored message in its own transaction (see the module docstring)."""
        try:
            p = process_message(m.raw, self.codes)
        except Hl7Error as exc:
            log.warning("HL7 message %s cannot be processed: %s", m.id, exc)
            await self._mark(m.id, f"{exc.reason}: {exc}")
            return
        try:
            async with self.db.transaction() as tx:
                if not await self._claim(tx, m.id):
                    return
                if p.message_type == "ADT^A40":
                    await self._merge(tx, p)
                await self._apply(tx, m, p)
        except DatabaseError:
            raise
        except Exception as exc:  # a bug must not block the queue: keep the message, say why
            log.exception("HL7 message %s: processing failed", m.id)
            await self._mark(m.id, f"internal: {type(exc).__name__}: {exc}"[:500])
            return
        self.processed += 1

    async def _claim(self, tx: Tx, uid: str) -> bool:
        sql = "SELECT processed_ms FROM hl7_inbound WHERE uid = $1"
        row = await tx.fetchrow(sql + " FOR UPDATE" if tx.dialect == "postgres" else sql, uid)
        return row is not None and row["processed_ms"] is None

    async def _mark(self, uid: str, error: str) -> None:
        await self.store.mark_processed(uid, error)

    async def _results(self, tx: Tx, m: StoredMessage, p: Processed) -> None:
        who = who_of(p)
        sid = await matching.find(tx, self.at_rest, who)
        if sid is not None and who.national_id and who.mrn:
            await matching.learn_mrn(tx, sid, who.mrn_authority, who.mrn, "hl7:ORU")
        now, origin = now_ms(), f"hl7:{m.id}"
        rows: list[tuple[Any, ...]] = []
        for n, r in enumerate(p.results, 1):
            code = r.loinc or f"{r.system or 'L'}:{r.code}"
            payload = msgspec.json.encode({"result": msgspec.to_builtins(r), "control_id": p.control_id,
                                           "message_type": p.message_type}).decode()
            rows.append((sid, f"{origin}:{n}", r.category, code[:64], r.value, r.units, _ms(r.observed_at), payload,
                         now, origin))
        await tx.executemany(_INSERT_RESULT, rows)
        if sid is None:
            await matching.add_unmatched(tx, "hl7", m.id, who, self.at_rest,
                                         f"{p.message_type} {p.control_id}: {len(p.results)} result(s)")
            log.info("HL7 message %s (%s): patient not known yet, on the unmatched list", m.id, p.control_id)

    async def _adt(self, tx: Tx, p: Processed) -> None:
        who = who_of(p)
        actor = f"hl7:{p.message_type}"
        sid = await matching.find(tx, self.at_rest, who)
        if sid is None:
            sid = await matching.anonymous_subject(tx, self.at_rest, who)
        await matching.learn_mrn(tx, sid, who.mrn_authority, who.mrn, actor)
        resolved = await matching.resolve_waiting(tx, sid, self.at_rest, who, actor=actor)
        for prior in p.merge_prior:  # A40: the old MRN now names the survivor too
            await matching.learn_mrn(tx, sid, prior.authority, prior.id, actor)
            resolved += await matching.resolve_waiting(tx, sid, self.at_rest,
                                                       Who(mrn=prior.id, mrn_authority=prior.authority), actor=actor)
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
