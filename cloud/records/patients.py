"""The patient index: one subject per person, matched by the blind index of the national ID.

* Ingest upserts subjects by blind index (:func:`cloud.intake.sync_store.upsert_subject`), so
  sessions from every hub and source for the same ID number land on one subject.
* People seen without an ID number (QR code, staff entry, HIS MRN) get their own subject;
  staff :func:`merge` it into the right one later. A merge rewrites nothing: it sets
  ``merged_into`` on the merged subject and records a ``subject_merges`` row, so
  :func:`unmerge` restores the exact previous state. Both are audited.
* Reads go through :func:`resolve`, which follows ``merged_into`` to the survivor;
  :func:`history` lists every merge of a person, undone ones included.

Every function runs in the caller's transaction (``Tx``), so a merge can commit together with
what caused it (the HL7 ``ADT^A40`` in its processing transaction).
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud import audit
from cloud.db.engine import Tx
from cloud.errors import PatientIndexError
from cloud.records.crypto_at_rest import AtRest
from protocol.errors import IdNumberError
from protocol.ids import now_ms

_MAX_CHAIN = 32


async def resolve(tx: Tx, subject_id: int) -> int:
    """The surviving subject id after following merges."""
    current = subject_id
    for _ in range(_MAX_CHAIN):
        row = await tx.fetchrow("SELECT merged_into FROM subjects WHERE id = $1", current)
        if row is None:
            raise PatientIndexError(f"subject {current} does not exist")
        if row["merged_into"] is None:
            return current
        current = int(row["merged_into"])
    raise PatientIndexError(f"subject {subject_id}: merge chain longer than {_MAX_CHAIN}")


async def find_by_national_id(tx: Tx, at_rest: AtRest, national_id: str) -> int | None:
    """The (surviving) subject with this ID number, or None."""
    try:
        index = at_rest.blind_index(national_id)
    except IdNumberError as exc:
        raise PatientIndexError(f"not a valid ID number: {exc}") from exc
    sid = await tx.fetchval("SELECT id FROM subjects WHERE blind_index = $1", index)
    return None if sid is None else await resolve(tx, int(sid))


async def members(tx: Tx, subject_id: int) -> list[int]:
    """The subject and every subject merged into it (transitively)."""
    out, frontier = [subject_id], [subject_id]
    while frontier:
        children: list[int] = []
        for parent in frontier:
            children += [int(r["id"]) for r in await tx.fetch("SELECT id FROM subjects WHERE merged_into = $1 "
                                                               "ORDER BY id", parent)]
        frontier = [c for c in children if c not in out]
        out.extend(frontier)
    return out


async def merge(tx: Tx, survivor_id: int, merged_id: int, *, actor: str, reason: str) -> int:
    """Merge ``merged_id`` into ``survivor_id`` in the caller's transaction; returns the merge id.

    Every refusal (:class:`PatientIndexError`) is raised before anything is written, so the
    caller's transaction stays usable (the HL7 A40 path logs a repeat and goes on).
    """
    if not reason.strip():
        raise PatientIndexError("a merge needs a reason (kept in the audit log)")
    target = await resolve(tx, survivor_id)
    row = await tx.fetchrow("SELECT merged_into FROM subjects WHERE id = $1", merged_id)
    if row is None:
        raise PatientIndexError(f"subject {merged_id} does not exist")
    if row["merged_into"] is not None:
        raise PatientIndexError(f"subject {merged_id} is already merged into {row['merged_into']}")
    if target in await members(tx, merged_id):  # itself, or a subject already merged into it
        raise PatientIndexError(f"subject {merged_id} cannot be merged into itself or its own merges")
    now = now_ms()
    await tx.execute("UPDATE subjects SET merged_into = $1, updated_ms = $2 WHERE id = $3", target, now, merged_id)
    merge_id = int(await tx.fetchval(
        "INSERT INTO subject_merges (survivor_id, merged_id, actor, reason, merged_ms) VALUES ($1, $2, $3, $4, $5) "
        "RETURNING id", target, merged_id, actor, reason, now))
    await audit.write(tx, actor=actor, action="subject.merge", outcome="ok", subject_id=target, reason=reason,
                      detail={"merge_id": merge_id, "merged_id": merged_id}, at_ms=now)
    return merge_id


async def unmerge(tx: Tx, merge_id: int, *, actor: str) -> None:
    """Reverse a merge exactly (audited, in the caller's transaction)."""
    m = await tx.fetchrow("SELECT survivor_id, merged_id, undone_ms FROM subject_merges WHERE id = $1", merge_id)
    if m is None or m["undone_ms"] is not None:
        raise PatientIndexError(f"merge {merge_id} does not exist or was already undone")
    current = await tx.fetchval("SELECT merged_into FROM subjects WHERE id = $1", m["merged_id"])
    if current != m["survivor_id"]:
        raise PatientIndexError(f"subject {m['merged_id']} is no longer merged into {m['survivor_id']}")
    now = now_ms()
    await tx.execute("UPDATE subjects SET merged_into = NULL, updated_ms = $1 WHERE id = $2", now, m["merged_id"])
    await tx.execute("UPDATE subject_merges SET undone_ms = $1, undone_by = $2 WHERE id = $3", now, actor, merge_id)
    await audit.write(tx, actor=actor, action="subject.unmerge", outcome="ok", subject_id=int(m["survivor_id"]),
                      detail={"merge_id": merge_id, "merged_id": int(m["merged_id"])}, at_ms=now)


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


async def history(tx: Tx, subject_id: int) -> list[MergeRecord]:
    """Every merge (also undone ones) that involved this subject or anyone merged into it, oldest first."""
    ids = await members(tx, await resolve(tx, subject_id))
    ids.append(subject_id)
    seen: dict[int, MergeRecord] = {}
    for sid in ids:
        for r in await tx.fetch("SELECT id, survivor_id, merged_id, actor, reason, merged_ms, undone_ms, undone_by "
                                "FROM subject_merges WHERE survivor_id = $1 OR merged_id = $2", sid, sid):
            seen[int(r["id"])] = MergeRecord(int(r["id"]), int(r["survivor_id"]), int(r["merged_id"]), r["actor"],
                                             r["reason"], r["merged_ms"], r["undone_ms"], r["undone_by"])
    return [seen[k] for k in sorted(seen)]


@dataclass(frozen=True)
class Visit:
    """A session of a subject (or of a subject merged into it)."""

    hub_id: str
    session_id: str
    subject_id: int
    station_id: str
    opened_ms: int
    closed_ms: int | None


_VISIT = "SELECT hub_id, session_id, subject_id, station_id, opened_ms, closed_ms FROM sessions"


async def visits(tx: Tx, subject_id: int) -> list[Visit]:
    """Every visit of the person, across hubs and merged records, oldest first."""
    out: list[Visit] = []
    for sid in await members(tx, await resolve(tx, subject_id)):
        out += [Visit(**dict(r)) for r in await tx.fetch(_VISIT + " WHERE subject_id = $1", sid)]
    return sorted(out, key=lambda v: v.opened_ms)


async def visits_of_session(tx: Tx, hub_id: str, session_id: str) -> list[Visit]:
    """The visit recorded for one hub session (empty when unknown)."""
    return [Visit(**dict(r)) for r in await tx.fetch(_VISIT + " WHERE hub_id = $1 AND session_id = $2",
                                                     hub_id, session_id)]


async def reveal(tx: Tx, at_rest: AtRest, subject_id: int, *, actor: str, purpose: str) -> tuple[str | None, str]:
    """Decrypt a subject's ID number and name for an authorised screen (audited; mask before display)."""
    s = await tx.fetchrow("SELECT national_id_enc, name_enc FROM subjects WHERE id = $1", subject_id)
    if s is None:
        raise PatientIndexError(f"subject {subject_id} does not exist")
    await audit.write(tx, actor=actor, action="subject.reveal", outcome="ok", subject_id=subject_id,
                      detail={"purpose": purpose})
    nid = at_rest.open(bytes(s["national_id_enc"]), "subjects.national_id") if s["national_id_enc"] else None
    name = at_rest.open(bytes(s["name_enc"]), "subjects.name") if s["name_enc"] else ""
    return nid, name
