"""The unmatched work list as people finish it: whom each result names, what it says, who it may be.

Each waiting item comes with its patient context (masked name, birth date, sex — migration 17,
taken from the ID number when the message had one), its results with display name, flag and
reference range (:mod:`protocol.labresults`), and the known subjects born the same day ranked by
:func:`cloud.integration.candidates.rank` (masked name and ID number). Names are opened only to
rank and mask them; the caller audits the view (``view.unmatched``). The same person view
(:func:`person`) and result lines (:func:`result_lines`) serve the dashboard's patient page.

    items = await load(db, at_rest)                              # waiting items, oldest first, with candidates
    mine = await matched_by(db, at_rest, "web:alice", since_ms)  # what she matched (and may undo)
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cloud.db.engine import Database, Tx
from cloud.integration.candidates import Person, rank
from cloud.records.crypto_at_rest import AtRest
from protocol import idnum, labresults
from protocol.errors import IdNumberError

CANDIDATE_POOL = 500  #: subjects born the same day read per item (a city has a few hundred per day at most)
_NAME = "subjects.name"


@dataclass(frozen=True)
class PersonView:
    """A person as a screen shows her: masked name and ID number, birth date, sex code (GB/T 2261.1)."""

    subject_id: int | None
    masked_name: str
    masked_id: str
    birth_date: str | None
    sex: str


@dataclass(frozen=True)
class ResultLine:
    """One result as people read it."""

    code: str
    name_zh: str
    name_en: str
    value: str
    unit: str
    reference_range: str
    flag: str | None  #: HL7 0078 (L, H, LL, HH, A, N ...); None when there is nothing to judge by
    observed_ms: int | None

    def name(self, lang: str) -> str:
        """The display name in ``lang``."""
        return self.name_zh if lang == "zh-CN" else self.name_en

    @property
    def known(self) -> bool:
        """The tables name the code (else the name is the sender's OBX-3.2 text, shown as sent)."""
        return labresults.known(self.code)

    @property
    def abnormal(self) -> bool:
        """Outside its range (or flagged so by the sender)."""
        return self.flag in labresults.ABNORMAL


@dataclass(frozen=True)
class Offer:
    """A candidate subject with her masked identity and how alike she is."""

    person: PersonView
    score: float
    name_similarity: float
    same_sex: bool


@dataclass(frozen=True)
class WorkItem:
    """A waiting result or study with everything needed to match it by a click."""

    id: int
    kind: str  #: hl7 / dicom
    ref: str
    mrn_authority: str
    mrn: str
    summary: str
    created_ms: int
    patient: PersonView
    has_national_id: bool
    results: list[ResultLine] = field(default_factory=list)
    offers: list[Offer] = field(default_factory=list)


class _Sent(msgspec.Struct):
    """The fields of a stored HL7 result the work list shows (results.payload["result"])."""

    name: str = ""
    reference_range: str = ""
    flags: tuple[str, ...] = ()


class _Payload(msgspec.Struct):
    result: _Sent | None = None


def result_lines(rows: Sequence[Any]) -> list[ResultLine]:
    """Rows of ``results`` (code, value, unit, payload, observed_ms) as people read them."""
    out = []
    for r in rows:
        try:
            sent = msgspec.json.decode(r["payload"] or "{}", type=_Payload).result or _Sent()
        except (msgspec.DecodeError, msgspec.ValidationError):
            sent = _Sent()
        code = str(r["code"])
        out.append(ResultLine(code, labresults.display_name(code, "zh-CN", sent.name),
                              labresults.display_name(code, "en", sent.name), str(r["value"]), str(r["unit"] or ""),
                              sent.reference_range, labresults.flag(str(r["value"]), sent.reference_range, sent.flags),
                              r["observed_ms"]))
    return out


def _opened(at_rest: AtRest, row: Mapping[str, Any]) -> tuple[PersonView, str]:
    """A subject row (id, name_enc, national_id_enc, sex, birth_date) masked, and her name in clear for ranking."""
    name = at_rest.open(bytes(row["name_enc"]), _NAME) if row["name_enc"] else ""
    nid = at_rest.open(bytes(row["national_id_enc"]), "subjects.national_id") if row["national_id_enc"] else None
    sex, born = str(row["sex"] or "0"), row["birth_date"]
    if nid:
        # the ID number encodes both, whatever the message that created her said (one stored before
        # validation was strict keeps what the row says)
        with contextlib.suppress(IdNumberError):
            sex, born = idnum.sex(nid), idnum.birth_date(nid).isoformat()
    return PersonView(int(row["id"]), idnum.mask_name(name), idnum.mask(nid) if nid else "", born, sex), name


def person(at_rest: AtRest, row: Mapping[str, Any]) -> PersonView:
    """A subject row (id, name_enc, national_id_enc, sex, birth_date) as a screen shows her: masked, sex
    and birth date from the ID number when she has one."""
    return _opened(at_rest, row)[0]


_SUBJECT = "SELECT id, name_enc, national_id_enc, sex, birth_date FROM subjects"


async def _offers(tx: Tx, at_rest: AtRest, who: Person, cache: dict[str, list[tuple[Person, PersonView]]]
                  ) -> list[Offer]:
    if not who.birth_date:
        return []
    if who.birth_date not in cache:
        pool = []
        for r in await tx.fetch(_SUBJECT + " WHERE birth_date = $1 AND merged_into IS NULL ORDER BY id LIMIT $2",
                                who.birth_date, CANDIDATE_POOL):
            view, name = _opened(at_rest, dict(r))
            pool.append((Person(int(r["id"]), name, view.birth_date, view.sex), view))
        cache[who.birth_date] = pool
    views = {p.subject_id: v for p, v in cache[who.birth_date]}
    return [Offer(views[c.subject_id], c.score, c.name_similarity, c.same_sex)
            for c in rank(who, [p for p, _ in cache[who.birth_date]])]


def _waiting_person(at_rest: AtRest, row: Mapping[str, Any]) -> tuple[PersonView, str]:
    name = at_rest.open(bytes(row["name_enc"]), _NAME) if row["name_enc"] else ""
    return PersonView(None, idnum.mask_name(name), "", row["birth_date"], str(row["sex"] or "0")), name


async def _results(tx: Tx, kind: str, ref: str) -> list[ResultLine]:
    return result_lines(await tx.fetch("SELECT code, value, unit, payload, observed_ms FROM results "
                                       "WHERE origin = $1 ORDER BY source_key", f"{kind}:{ref}"))


async def load(db: Database, at_rest: AtRest, *, limit: int = 200) -> list[WorkItem]:
    """The waiting items, oldest first, each with its patient, results and ranked candidates."""
    items: list[WorkItem] = []
    cache: dict[str, list[tuple[Person, PersonView]]] = {}
    async with db.transaction() as tx:
        rows = await tx.fetch("SELECT id, kind, ref, mrn_authority, mrn, blind_index, summary, created_ms, name_enc, "
                              "sex, birth_date FROM unmatched WHERE status = 'waiting' ORDER BY id LIMIT $1", limit)
        for r in rows:
            d = dict(r)
            patient, name = _waiting_person(at_rest, d)
            offers = await _offers(tx, at_rest, Person(0, name, patient.birth_date, patient.sex), cache)
            items.append(WorkItem(int(d["id"]), d["kind"], d["ref"], d["mrn_authority"], d["mrn"], d["summary"],
                                  d["created_ms"], patient, d["blind_index"] is not None,
                                  await _results(tx, d["kind"], d["ref"]), offers))
    return items


@dataclass(frozen=True)
class Match:
    """A match someone made: the item's patient and results, and whom they were attached to."""

    id: int
    kind: str
    patient: PersonView
    results: list[ResultLine]
    subject: PersonView | None
    resolved_ms: int


async def matched_by(db: Database, at_rest: AtRest, actor: str, since_ms: int, *, limit: int = 50) -> list[Match]:
    """``actor``'s matches since ``since_ms`` (the ones she may undo), newest first."""
    out = []
    async with db.transaction() as tx:
        rows = await tx.fetch("SELECT id, kind, ref, name_enc, sex, birth_date, subject_id, resolved_ms FROM unmatched "
                              "WHERE status = 'resolved' AND resolved_by = $1 AND resolved_ms >= $2 "
                              "ORDER BY resolved_ms DESC, id DESC LIMIT $3", actor, since_ms, limit)
        for r in rows:
            d = dict(r)
            subject = await tx.fetchrow(_SUBJECT + " WHERE id = $1", d["subject_id"])
            out.append(Match(int(d["id"]), d["kind"], _waiting_person(at_rest, d)[0],
                             await _results(tx, d["kind"], d["ref"]),
                             person(at_rest, dict(subject)) if subject is not None else None, d["resolved_ms"]))
    return out
