"""The patient index: one subject per person, matched by the blind index of the national ID.

* Ingest upserts subjects by blind index (:func:`cloud.sync_store.upsert_subject`), so
  sessions from every hub and source for the same ID number land on one subject.
* People seen without an ID number (QR code, staff entry, HIS MRN) get their own subject;
  staff :func:`merge` it into the right one later. A merge rewrites nothing: it sets
  ``merged_into`` on the merged subject and records a ``subject_merges`` row, so
  :func:`unmerge` restores the exact previous state. Both are audited.
* Reads go through :func:`resolve`, which follows ``merged_into`` to the survivor;
  :func:`history` lists every merge of a person, undone ones included.

Needs tortoise initialised (:func:`cloud.db.orm.orm`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from tortoise.transactions import in_transaction

from cloud.crypto_at_rest import AtRest
from cloud.db.models import AuditEntry, Session, Subject, SubjectMerge
from cloud.errors import PatientIndexError
from protocol.errors import IdNumberError
from protocol.ids import now_ms

_MAX_CHAIN = 32


async def _audit(action: str, actor: str, subject_id: int, detail: dict[str, object], reason: str = "") -> None:
    await AuditEntry.create(at_ms=now_ms(), actor=actor, action=action, outcome="ok", subject_id=subject_id,
                            reason=reason or None, detail=msgspec.json.encode(detail).decode())


async def resolve(subject_id: int) -> int:
    """The surviving subject id after following merges."""
    current = subject_id
    for _ in range(_MAX_CHAIN):
        s = await Subject.get_or_none(id=current)
        if s is None:
            raise PatientIndexError(f"subject {current} does not exist")
        if s.merged_into is None:
            return current
        current = s.merged_into
    raise PatientIndexError(f"subject {subject_id}: merge chain longer than {_MAX_CHAIN}")


async def find_by_national_id(at_rest: AtRest, national_id: str) -> int | None:
    """The (surviving) subject with this ID number, or None."""
    try:
        index = at_rest.blind_index(national_id)
    except IdNumberError as exc:
        raise PatientIndexError(f"not a valid ID number: {exc}") from exc
    s = await Subject.get_or_none(blind_index=index)
    return None if s is None else await resolve(s.id)


async def members(subject_id: int) -> list[int]:
    """The subject and every subject merged into it (transitively)."""
    out, frontier = [subject_id], [subject_id]
    while frontier:
        children: list[Any] = list(await Subject.filter(merged_into__in=frontier).values_list("id", flat=True))
        frontier = [int(c) for c in children if int(c) not in out]
        out.extend(frontier)
    return out


async def merge(survivor_id: int, merged_id: int, *, actor: str, reason: str) -> int:
    """Merge ``merged_id`` into ``survivor_id``; returns the merge id (for :func:`unmerge`)."""
    if not reason.strip():
        raise PatientIndexError("a merge needs a reason (kept in the audit log)")
    async with in_transaction():
        target = await resolve(survivor_id)
        merged = await Subject.get_or_none(id=merged_id)
        if merged is None:
            raise PatientIndexError(f"subject {merged_id} does not exist")
        if merged.merged_into is not None:
            raise PatientIndexError(f"subject {merged_id} is already merged into {merged.merged_into}")
        if target in await members(merged_id):  # itself, or a subject already merged into it
            raise PatientIndexError(f"subject {merged_id} cannot be merged into itself or its own merges")
        merged.merged_into = target
        merged.updated_ms = now_ms()
        await merged.save(update_fields=["merged_into", "updated_ms"])
        m = await SubjectMerge.create(survivor_id=target, merged_id=merged_id, actor=actor, reason=reason,
                                      merged_ms=now_ms())
        await _audit("subject.merge", actor, target, {"merge_id": m.id, "merged_id": merged_id}, reason)
    return int(m.id)


async def unmerge(merge_id: int, *, actor: str) -> None:
    """Reverse a merge exactly (audited)."""
    async with in_transaction():
        m = await SubjectMerge.get_or_none(id=merge_id)
        if m is None or m.undone_ms is not None:
            raise PatientIndexError(f"merge {merge_id} does not exist or was already undone")
        n = await Subject.filter(id=m.merged_id, merged_into=m.survivor_id).update(merged_into=None,
                                                                                  updated_ms=now_ms())
        if not n:
            raise PatientIndexError(f"subject {m.merged_id} is no longer merged into {m.survivor_id}")
        m.undone_ms, m.undone_by = now_ms(), actor
        await m.save(update_fields=["undone_ms", "undone_by"])
        await _audit("subject.unmerge", actor, m.survivor_id, {"merge_id": merge_id, "merged_id": m.merged_id})


@dataclass(frozen=True)
class MergeRecord:
    """One merge, as the audit screen shows it: who merged what, why, and whether it was undone."""

    merge_id: int
    survivor_id: int
    merged_id: int
    actor: str
    reason: str
    merged_ms: int
    undone_ms: int | None
    undone_by: str | None


async def history(subject_id: int) -> list[MergeRecord]:
    """Every merge (also undone ones) that involved this subject or anyone merged into it, oldest first."""
    ids = await members(await resolve(subject_id))
    ids.append(subject_id)
    rows = await SubjectMerge.filter(survivor_id__in=ids).order_by("id").values() + \
        await SubjectMerge.filter(merged_id__in=ids).order_by("id").values()
    seen = {r["id"]: r for r in rows}
    return [MergeRecord(r["id"], r["survivor_id"], r["merged_id"], r["actor"], r["reason"], r["merged_ms"],
                        r["undone_ms"], r["undone_by"]) for _, r in sorted(seen.items())]


@dataclass(frozen=True)
class Visit:
    """A session of a subject (or of a subject merged into it)."""

    hub_id: str
    session_id: str
    subject_id: int
    station_id: str
    opened_ms: int
    closed_ms: int | None


async def visits(subject_id: int) -> list[Visit]:
    """Every visit of the person, across hubs and merged records, oldest first."""
    ids = await members(await resolve(subject_id))
    rows = await Session.filter(subject_id__in=ids).order_by("opened_ms").values(
        "hub_id", "session_id", "subject_id", "station_id", "opened_ms", "closed_ms")
    return [Visit(**r) for r in rows]


async def visits_of_session(hub_id: str, session_id: str) -> list[Visit]:
    """The visit recorded for one hub session (empty when unknown)."""
    rows = await Session.filter(hub_id=hub_id, session_id=session_id).values(
        "hub_id", "session_id", "subject_id", "station_id", "opened_ms", "closed_ms")
    return [Visit(**r) for r in rows]


async def reveal(at_rest: AtRest, subject_id: int, *, actor: str, purpose: str) -> tuple[str | None, str]:
    """Decrypt a subject's ID number and name for an authorised screen (audited; mask before display)."""
    s = await Subject.get_or_none(id=subject_id)
    if s is None:
        raise PatientIndexError(f"subject {subject_id} does not exist")
    await _audit("subject.reveal", actor, subject_id, {"purpose": purpose})
    nid = at_rest.open(bytes(s.national_id_enc), "subjects.national_id") if s.national_id_enc else None
    name = at_rest.open(bytes(s.name_enc), "subjects.name") if s.name_enc else ""
    return nid, name
