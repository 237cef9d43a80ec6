"""Which subject a hospital message or study belongs to — inside the caller's transaction.

Order (DESIGN.md "Patient identity"): the national ID (validated, GB 11643) through the
blind index of ``subjects``; else the HIS MRN learned from ADT (``subject_identifiers``,
per assigning authority); else nothing, and the caller puts the item on the unmatched
work list. A person known by a valid national ID always has a subject: one is created
(sealed ID and name) when the hospital knows her before any hub does, exactly as ingest
would create it, so her later visits land on the same subject.

Merged subjects (:mod:`cloud.records.patients`) are followed to the survivor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from cloud import audit
from cloud.db.engine import Tx
from cloud.errors import PatientIndexError
from cloud.intake.sync_store import upsert_subject
from cloud.records.crypto_at_rest import AtRest
from protocol import idnum
from protocol.errors import IdNumberError
from protocol.ids import now_ms
from protocol.model import Subject

log = logging.getLogger("mchub.cloud.integration")
_MAX_CHAIN = 32
#: a learned MRN and a work-list item (also written in groups by cloud.integration.lookups)
INSERT_IDENTIFIER = ("INSERT INTO subject_identifiers (authority, value, subject_id, source, created_ms) "
                     "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
INSERT_UNMATCHED = ("INSERT INTO unmatched (kind, ref, mrn_authority, mrn, blind_index, summary, created_ms, "
                    "name_enc, sex, birth_date) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
                    "ON CONFLICT (kind, ref) DO NOTHING")
_SEX = {"F": "2", "M": "1", "O": "9", "U": "0", "A": "9", "N": "0"}  # HL7 0001 / DICOM -> GB/T 2261.1


@dataclass(frozen=True)
class Who:
    """How an inbound item names its patient (national ID already validated, or None)."""

    national_id: str | None = None
    mrn: str = ""
    mrn_authority: str = ""
    name: str = ""
    sex: str = ""  #: HL7/DICOM code (F, M, O, U)
    birth_date: str = ""  #: YYYYMMDD or YYYY-MM-DD

    def subject(self) -> Subject:
        """The protocol Subject for creating/upserting by national ID (sex and birth date from the
        ID number when there is one: it encodes both; else PID-8 and PID-7)."""
        sex, iso = self.sex_code(), self.birth_iso()
        return Subject(national_id=self.national_id, name=self.name, sex=sex,  # type: ignore[arg-type]
                       birth_date=iso, mrn=self.mrn or None, source="staff")

    def sex_code(self) -> str:
        """GB/T 2261.1 sex: from the ID number, else the HL7/DICOM code."""
        return idnum.sex(self.national_id) if self.national_id else _SEX.get(self.sex.upper(), "0")

    def birth_iso(self) -> str | None:
        """YYYY-MM-DD birth date: from the ID number, else the message's; None when neither is a date."""
        if self.national_id:
            return idnum.birth_date(self.national_id).isoformat()
        birth = self.birth_date.replace("-", "")[:8]
        return f"{birth[:4]}-{birth[4:6]}-{birth[6:8]}" if len(birth) == 8 and birth.isdigit() else None


def valid_national_id(value: str | None) -> str | None:
    """The normalised number, or None when absent or invalid."""
    if not value:
        return None
    try:
        return idnum.normalise(value)
    except IdNumberError:
        return None


async def survivor(tx: Tx, subject_id: int) -> int:
    """Follow ``merged_into`` to the surviving subject."""
    current = subject_id
    for _ in range(_MAX_CHAIN):
        nxt = await tx.fetchval("SELECT merged_into FROM subjects WHERE id = $1", current)
        if nxt is None:
            return current
        current = int(nxt)
    raise PatientIndexError(f"subject {subject_id}: merge chain longer than {_MAX_CHAIN}")


async def by_mrn(tx: Tx, authority: str, value: str) -> int | None:
    """The subject of an MRN: exact authority first, else the value under any authority if unambiguous."""
    if not value:
        return None
    sid = await tx.fetchval("SELECT subject_id FROM subject_identifiers WHERE authority = $1 AND value = $2",
                            authority, value)
    if sid is None:
        rows = await tx.fetch("SELECT DISTINCT subject_id FROM subject_identifiers WHERE value = $1", value)
        survivors = {await survivor(tx, int(r["subject_id"])) for r in rows}
        return survivors.pop() if len(survivors) == 1 else None
    return await survivor(tx, int(sid))


async def by_national_id(tx: Tx, at_rest: AtRest, who: Who, *, create: bool) -> int | None:
    """The subject of a valid national ID; created (sealed) when ``create`` and unknown."""
    if who.national_id is None:
        return None
    sid = await tx.fetchval("SELECT id FROM subjects WHERE blind_index = $1", at_rest.blind_index(who.national_id))
    if sid is None and create:  # known to the hospital before any hub: create her as ingest would
        sid = await upsert_subject(tx, who.subject(), at_rest, now_ms())
    return None if sid is None else await survivor(tx, int(sid))


async def find(tx: Tx, at_rest: AtRest, who: Who, *, create: bool = True) -> int | None:
    """National ID first (creating the subject), else the MRN; None when neither matches."""
    sid = await by_national_id(tx, at_rest, who, create=create)
    return sid if sid is not None else await by_mrn(tx, who.mrn_authority, who.mrn)


async def learn_mrn(tx: Tx, subject_id: int, authority: str, value: str, source: str) -> None:
    """Remember that the HIS calls ``subject_id`` by this MRN (a conflicting earlier mapping is kept, logged)."""
    if not value:
        return
    have = await tx.fetchval("SELECT subject_id FROM subject_identifiers WHERE authority = $1 AND value = $2",
                             authority, value)
    if have is None:
        await tx.execute(INSERT_IDENTIFIER, authority, value, subject_id, source, now_ms())
    elif await survivor(tx, int(have)) != subject_id:
        log.warning("MRN of authority %r already belongs to subject %s, not %s; kept (merge them if the same person)",
                    authority, have, subject_id)


async def anonymous_subject(tx: Tx, at_rest: AtRest, who: Who) -> int:
    """A subject for a patient the HIS knows only by MRN (staff merge it later if needed)."""
    return await upsert_subject(tx, Subject(name=who.name, sex=who.subject().sex, birth_date=who.subject().birth_date,
                                            mrn=who.mrn or None, source="staff"), at_rest, now_ms())


def unmatched_row(kind: str, ref: str, who: Who, at_rest: AtRest, summary: str) -> tuple[Any, ...]:
    """The parameters of :data:`INSERT_UNMATCHED` for one item: whom it names, the name sealed."""
    bi = at_rest.blind_index(who.national_id) if who.national_id else None
    name = at_rest.seal(who.name, "subjects.name") if who.name else None
    return (kind, ref, who.mrn_authority, who.mrn, bi, summary[:300], now_ms(), name, who.sex_code(), who.birth_iso())


async def add_unmatched(tx: Tx, kind: str, ref: str, who: Who, at_rest: AtRest, summary: str) -> None:
    """Put an item on the work list (idempotent on ``(kind, ref)``)."""
    await tx.execute(INSERT_UNMATCHED, *unmatched_row(kind, ref, who, at_rest, summary))


async def resolve_item(tx: Tx, item_id: int, subject_id: int, *, actor: str) -> bool:
    """Attach a waiting item's results/study to ``subject_id`` (audited); False if it was not waiting."""
    row = await tx.fetchrow("SELECT kind, ref FROM unmatched WHERE id = $1 AND status = 'waiting'", item_id)
    if row is None:
        return False
    if await tx.fetchval("SELECT id FROM subjects WHERE id = $1", subject_id) is None:
        raise PatientIndexError(f"subject {subject_id} does not exist")
    target = await survivor(tx, subject_id)
    kind, ref = row["kind"], row["ref"]
    await tx.execute("UPDATE results SET subject_id = $1 WHERE origin = $2", target, f"{kind}:{ref}")
    if kind == "dicom":
        await tx.execute("UPDATE dicom_instances SET subject_id = $1 WHERE sop_instance_uid = $2", target, ref)
    await tx.execute("UPDATE unmatched SET status = 'resolved', subject_id = $1, resolved_by = $2, resolved_ms = $3 "
                     "WHERE id = $4", target, actor, now_ms(), item_id)
    await audit.write(tx, actor=actor, action="unmatched.resolve", outcome="ok", subject_id=target,
                      detail={"item": item_id, "kind": kind})
    return True


async def unresolve_item(tx: Tx, item_id: int, *, actor: str, since_ms: int) -> int | None:
    """Undo ``actor``'s own match of a work-list item made at or after ``since_ms`` (audited): the item
    waits again and its results/study belong to nobody. Returns the subject it was attached to, or
    None when there is no such match to undo (someone else's, an older one, or never matched)."""
    row = await tx.fetchrow("SELECT kind, ref, subject_id FROM unmatched WHERE id = $1 AND status = 'resolved' "
                            "AND resolved_by = $2 AND resolved_ms >= $3", item_id, actor, since_ms)
    if row is None:
        return None
    kind, ref, subject_id = row["kind"], row["ref"], row["subject_id"]
    await tx.execute("UPDATE results SET subject_id = NULL WHERE origin = $1", f"{kind}:{ref}")
    if kind == "dicom":
        await tx.execute("UPDATE dicom_instances SET subject_id = NULL WHERE sop_instance_uid = $1", ref)
    await tx.execute("UPDATE unmatched SET status = 'waiting', subject_id = NULL, resolved_by = NULL, "
                     "resolved_ms = NULL WHERE id = $1", item_id)
    await audit.write(tx, actor=actor, action="unmatched.undo", outcome="ok", subject_id=subject_id,
                      detail={"item": item_id, "kind": kind})
    return int(subject_id) if subject_id is not None else None


async def resolve_waiting(tx: Tx, subject_id: int, at_rest: AtRest, who: Who, *, actor: str) -> int:
    """Resolve every waiting item naming this MRN or national ID (a late ADT); returns how many."""
    bi = at_rest.blind_index(who.national_id) if who.national_id else None
    rows = await tx.fetch(
        "SELECT id, mrn, mrn_authority, blind_index FROM unmatched WHERE status = 'waiting' AND "
        "((mrn = $1 AND mrn <> '') OR (blind_index IS NOT NULL AND blind_index = $2)) ORDER BY id",
        who.mrn, bi or "")
    done = 0
    for r in rows:
        by_mrn_only = bi is None or r["blind_index"] != bi
        if by_mrn_only and who.mrn_authority and r["mrn_authority"] and r["mrn_authority"] != who.mrn_authority:
            continue
        done += await resolve_item(tx, int(r["id"]), subject_id, actor=actor)
    return done
