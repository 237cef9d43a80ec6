"""Patient matching for a group of HL7 messages in one transaction, with few round trips.

:class:`Lookups` answers the questions of :mod:`cloud.integration.matching` (``find``,
``learn_mrn``, the unmatched work list) for every message of a processing group:

* :meth:`Lookups.load` reads, in two statements, the subjects of every national ID and
  the identifiers of every MRN the group names (merged subjects followed to the survivor);
* the messages are then applied one after the other, in arrival order; what a message
  creates (a subject, a learned MRN) is remembered at once, so a later message of the same
  patient in the group sees it exactly as it would have seen it in the database;
* writes that nothing in the group reads back (new MRN mappings, work-list items) wait in
  memory and go out together in :meth:`flush`, which the caller runs before COMMIT and
  before an ADT that resolves a work-list item still in memory (:meth:`names_waiting`);
  an ADT naming nobody waiting in the group lets them wait, so a group's writes stay a
  handful of statements however many ADT it holds;
* which MRNs and national IDs have work-list items waiting is read once for the group too
  (:meth:`may_be_waiting`): an ADT looks for items to resolve only when one may name it,
  instead of one query per ADT (``unmatched`` has no index on ``blind_index``, so each of
  those scanned the table).

Same rules as ``matching`` (national ID first, creating the subject; else the MRN, exact
authority first, else unambiguous under any authority); only the number of round trips
differs. SQLite (one local file) reads key by key; PostgreSQL reads arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from cloud.db.engine import Tx
from cloud.intake.sync_store import upsert_subject
from cloud.integration.matching import INSERT_IDENTIFIER, INSERT_UNMATCHED, Who, survivor, unmatched_row
from cloud.records.crypto_at_rest import AtRest
from protocol.ids import now_ms

log = logging.getLogger("mchub.cloud.integration")

_SUBJECTS_PG = "SELECT blind_index, id, merged_into FROM subjects WHERE blind_index = ANY($1::text[])"
_SUBJECTS_ONE = "SELECT blind_index, id, merged_into FROM subjects WHERE blind_index = $1"
_IDENTIFIERS = ("SELECT i.authority, i.value, i.subject_id, s.merged_into FROM subject_identifiers i "
                "JOIN subjects s ON s.id = i.subject_id WHERE ")
_IDENTIFIERS_PG = _IDENTIFIERS + "i.value = ANY($1::text[])"
_IDENTIFIERS_ONE = _IDENTIFIERS + "i.value = $1"
_WAITING = "SELECT mrn, blind_index FROM unmatched WHERE status = 'waiting' AND "
_WAITING_PG = _WAITING + "((mrn = ANY($1::text[]) AND mrn <> '') OR blind_index = ANY($2::text[]))"
_WAITING_ONE = _WAITING + "((mrn = $1 AND mrn <> '') OR blind_index = $2)"


class Lookups:
    """Who is who for one group of messages inside one transaction (see the module docstring)."""

    def __init__(self, tx: Tx, at_rest: AtRest) -> None:
        self.tx = tx
        self.at_rest = at_rest
        self._subjects: dict[str, int | None] = {}  #: blind index -> survivor (None: no such subject)
        self._identifiers: dict[str, list[tuple[str, int]]] = {}  #: MRN value -> [(authority, survivor)]
        self._new_identifiers: list[tuple[Any, ...]] = []
        self._unmatched: list[tuple[Any, ...]] = []
        self._unmatched_keys: set[str] = set()  #: MRNs and blind indexes of the items in ``_unmatched``
        #: MRNs and blind indexes of work-list items waiting in the database (read by load, added to by flush)
        self._waiting_keys: set[str] = set()

    @classmethod
    async def load(cls, tx: Tx, at_rest: AtRest, people: Iterable[Who]) -> Lookups:
        """Read what the database knows about every national ID and MRN of ``people``."""
        self, people = cls(tx, at_rest), list(people)
        indexes = sorted({at_rest.blind_index(w.national_id) for w in people if w.national_id} - {""})
        values = sorted({w.mrn for w in people if w.mrn})
        if tx.dialect == "postgres":
            subjects = await tx.fetch(_SUBJECTS_PG, indexes) if indexes else []
            identifiers = await tx.fetch(_IDENTIFIERS_PG, values) if values else []
            waiting = await tx.fetch(_WAITING_PG, values, indexes) if values or indexes else []
        else:
            subjects = [r for i in indexes for r in await tx.fetch(_SUBJECTS_ONE, i)]
            identifiers = [r for v in values for r in await tx.fetch(_IDENTIFIERS_ONE, v)]
            waiting = [r for v in values for r in await tx.fetch(_WAITING_ONE, v, "")]
            waiting += [r for i in indexes for r in await tx.fetch(_WAITING_ONE, "", i)]
        self._waiting_keys = {k for r in waiting for k in (r["mrn"], r["blind_index"]) if k}
        self._subjects = dict.fromkeys(indexes)
        for r in subjects:
            self._subjects[r["blind_index"]] = await self._survivor(int(r["id"]), r["merged_into"])
        self._identifiers = {v: [] for v in values}
        for r in identifiers:
            sid = await self._survivor(int(r["subject_id"]), r["merged_into"])
            self._identifiers[r["value"]].append((r["authority"], sid))
        return self

    async def _survivor(self, sid: int, merged_into: int | None) -> int:
        return sid if merged_into is None else await survivor(self.tx, int(merged_into))

    async def find(self, who: Who) -> int | None:
        """As :func:`matching.find`: national ID first (creating the subject), else the MRN."""
        if who.national_id:
            bi = self.at_rest.blind_index(who.national_id)
            if bi not in self._subjects:  # not loaded: a person named outside load()
                self._subjects[bi] = await self._read_subject(bi)
            sid = self._subjects[bi]
            if sid is None:  # known to the hospital before any hub: create her as ingest would
                sid = await survivor(self.tx, await upsert_subject(self.tx, who.subject(), self.at_rest, now_ms()))
                self._subjects[bi] = sid
            return sid
        return await self.by_mrn(who.mrn_authority, who.mrn)

    async def _read_subject(self, bi: str) -> int | None:
        r = await self.tx.fetchrow(_SUBJECTS_ONE, bi)
        return None if r is None else await self._survivor(int(r["id"]), r["merged_into"])

    async def _entries(self, value: str) -> list[tuple[str, int]]:
        if value not in self._identifiers:  # not loaded
            rows = await self.tx.fetch(_IDENTIFIERS_ONE, value)
            self._identifiers[value] = [(r["authority"], await self._survivor(int(r["subject_id"]), r["merged_into"]))
                                        for r in rows]
        return self._identifiers[value]

    async def by_mrn(self, authority: str, value: str) -> int | None:
        """As :func:`matching.by_mrn`: exact authority first, else the value under any authority if unambiguous."""
        if not value:
            return None
        entries = await self._entries(value)
        exact = [sid for a, sid in entries if a == authority]
        if exact:
            return exact[0]
        survivors = {sid for _, sid in entries}
        return survivors.pop() if len(survivors) == 1 else None

    async def learn_mrn(self, subject_id: int, authority: str, value: str, source: str) -> None:
        """As :func:`matching.learn_mrn`; the row is written by :meth:`flush`."""
        if not value:
            return
        entries = await self._entries(value)
        have = next((sid for a, sid in entries if a == authority), None)
        if have is None:
            entries.append((authority, subject_id))
            self._new_identifiers.append((authority, value, subject_id, source, now_ms()))
        elif have != subject_id:
            log.warning("MRN of authority %r already belongs to subject %s, not %s; kept (merge them if the same "
                        "person)", authority, have, subject_id)

    def add_unmatched(self, kind: str, ref: str, who: Who, summary: str) -> None:
        """As :func:`matching.add_unmatched`; the row is written by :meth:`flush`."""
        row = unmatched_row(kind, ref, who, self.at_rest, summary)
        self._unmatched.append(row)
        self._unmatched_keys.update(k for k in (who.mrn, row[4]) if k)

    def names_waiting(self, people: Iterable[Who]) -> bool:
        """Whether a work-list item still in memory may name one of ``people`` (same MRN or national ID).

        An ADT resolves waiting items in the database: only then must they (and their result
        rows) be written before it; otherwise the group's writes keep going out together."""
        keys = self._unmatched_keys
        return bool(keys) and any(
            (w.mrn and w.mrn in keys) or (w.national_id and self.at_rest.blind_index(w.national_id) in keys)
            for w in people)

    def may_be_waiting(self, who: Who) -> bool:
        """Whether a work-list item waiting in the database may name ``who`` (same MRN or national ID).

        Only then does an ADT look for items to resolve (:func:`matching.resolve_waiting`,
        which decides on the MRN's authority); the items of this group still in memory are
        :meth:`names_waiting`'s, and become these once :meth:`flush` writes them."""
        keys = self._waiting_keys
        return bool(keys) and bool(
            (who.mrn and who.mrn in keys) or (who.national_id and self.at_rest.blind_index(who.national_id) in keys))

    async def flush(self) -> None:
        """Write the learned MRNs and work-list items kept in memory."""
        if self._new_identifiers:
            await self.tx.executemany(INSERT_IDENTIFIER, self._new_identifiers)
            self._new_identifiers = []
        if self._unmatched:
            await self.tx.executemany(INSERT_UNMATCHED, self._unmatched)
            self._unmatched = []
            self._waiting_keys |= self._unmatched_keys
            self._unmatched_keys = set()
