"""Read (and the few write) functions behind the integration pages of the dashboard.

Every function takes the cloud :class:`~cloud.db.engine.Database` and returns plain frozen
dataclasses; nothing here returns a national ID, and a raw message (sealed at rest) only
through :func:`inbound_raw`, which is audited.
Writes (resolve, replay) are audited with the given ``actor``; reprocessing a message is
:func:`cloud.integration.message_browser.reprocess`.

    rows = await inbound_log(db, limit=50)                 # HL7 messages with ACK codes
    raw = await inbound_raw(db, at_rest, rows[0].uid, actor="web:alice")   # audited: holds patient data
    counts = await inbound_counts(db)                      # {(status, ack_code): n}
    items = await unmatched(db)                            # the work list
    await resolve_unmatched(db, at_rest, item_id, actor="web:alice", subject_id=12)
    await undo_unmatched(db, item_id, actor="web:alice", since_ms=signed_in_ms)   # her own match only
    queue = await outbound_queue(db)                       # vitals to the HIS (his.vitals)
    await replay_outbound(db, message_id, actor="web:alice")
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from cloud import audit, outbox
from cloud.db.engine import Database
from cloud.errors import PatientIndexError
from cloud.integration import matching
from cloud.integration.matching import Who
from cloud.integration.vitals import TOPIC as VITALS_TOPIC
from cloud.integration.vitals import control_id
from cloud.mllp.db_store import COLUMN
from cloud.records.crypto_at_rest import AtRest


@dataclass(frozen=True)
class InboundRow:
    """One received MLLP frame: what it was, how it was answered, whether it was processed."""

    id: int
    uid: str
    received_ms: int
    peer: str
    sender: str
    control_id: str
    message_type: str
    status: str  #: accepted / error / rejected / oversized / garbage
    ack_code: str  #: AA AE AR CA CE CR ('' for garbage)
    reason: str
    duplicates: int
    control_id_reused: bool  #: a new message under a control id the sender had already used
    processed_ms: int | None
    process_error: str | None


@dataclass(frozen=True)
class UnmatchedItem:
    """A result message or study waiting for its patient."""

    id: int
    kind: str  #: hl7 / dicom
    ref: str  #: hl7_inbound uid or SOP Instance UID
    mrn_authority: str
    mrn: str
    has_national_id: bool
    summary: str
    status: str  #: waiting / resolved
    subject_id: int | None
    resolved_by: str | None
    resolved_ms: int | None
    created_ms: int


@dataclass(frozen=True)
class OutboundRow:
    """One vitals message for the HIS (an outbox row of topic ``his.vitals``)."""

    id: int
    control_id: str
    hub_id: str
    session_id: str
    status: str  #: pending / done / dead
    attempts: int
    next_attempt_ms: int
    last_error: str | None
    created_ms: int
    updated_ms: int


@dataclass(frozen=True)
class ResultRow:
    """A result attached to a subject (HL7 OBX or DICOM BI-RADS)."""

    id: int
    subject_id: int
    source: str
    kind: str
    code: str
    value: str
    unit: str
    observed_ms: int | None
    created_ms: int


_INBOUND = ("SELECT id, uid, received_ms, peer, sender, control_id, message_type, status, ack_code, reason, "
            "duplicates, control_id_reused, processed_ms, process_error FROM hl7_inbound")


async def inbound_log(db: Database, *, limit: int = 100, before_id: int | None = None,
                      status: str | None = None) -> list[InboundRow]:
    """Newest received frames first (page with ``before_id``), optionally of one ``status``."""
    async with db.transaction() as tx:
        rows = await tx.fetch(_INBOUND + " WHERE id < $1 AND ($2 = '' OR status = $3) ORDER BY id DESC LIMIT $4",
                              before_id if before_id is not None else 1 << 62, status or "", status or "", limit)
    return [InboundRow(**{**dict(r), "control_id_reused": bool(r["control_id_reused"])}) for r in rows]


async def inbound_counts(db: Database, since_ms: int = 0) -> dict[tuple[str, str], int]:
    """Frames by (status, ack code) received since ``since_ms``; plus ('unprocessed', '') and ('failed', '')."""
    async with db.transaction() as tx:
        rows = await tx.fetch("SELECT status, ack_code, COUNT(*) AS n FROM hl7_inbound WHERE received_ms >= $1 "
                              "GROUP BY status, ack_code", since_ms)
        pending = await tx.fetchval("SELECT COUNT(*) FROM hl7_inbound WHERE status = 'accepted' "
                                    "AND processed_ms IS NULL")
        failed = await tx.fetchval("SELECT COUNT(*) FROM hl7_inbound WHERE process_error IS NOT NULL")
    out = {(r["status"], r["ack_code"]): int(r["n"]) for r in rows}
    out[("unprocessed", "")] = int(pending)
    out[("failed", "")] = int(failed)
    return out


async def inbound_raw(db: Database, at_rest: AtRest, uid: str, *, actor: str) -> bytes:
    """The bytes of one received frame, opened (it holds patient data: the read is audited)."""
    async with db.transaction() as tx:
        row = await tx.fetchrow("SELECT raw, sealed FROM hl7_inbound WHERE uid = $1", uid)
        if row is None:
            raise PatientIndexError(f"no HL7 message {uid}")
        await audit.write(tx, actor=actor, action="hl7.view", outcome="ok", detail={"uid": uid})
    raw = bytes(row["raw"])
    return at_rest.open_bytes(raw, COLUMN) if row["sealed"] else raw


async def unmatched(db: Database, *, status: str = "waiting", limit: int = 200) -> list[UnmatchedItem]:
    """The work list, oldest first."""
    async with db.transaction() as tx:
        rows = await tx.fetch("SELECT id, kind, ref, mrn_authority, mrn, blind_index, summary, status, subject_id, "
                              "resolved_by, resolved_ms, created_ms FROM unmatched WHERE status = $1 "
                              "ORDER BY id LIMIT $2", status, limit)
    out = []
    for r in rows:
        d = dict(r)
        d["has_national_id"] = d.pop("blind_index") is not None
        out.append(UnmatchedItem(**d))
    return out


async def resolve_unmatched(db: Database, at_rest: AtRest, item_id: int, *, actor: str,
                            subject_id: int | None = None, national_id: str | None = None) -> int:
    """Attach a waiting item to a subject given by id or by national ID (created if new); returns the subject."""
    async with db.transaction() as tx:
        if subject_id is None:
            nid = matching.valid_national_id(national_id)
            if nid is None:
                raise PatientIndexError("give a subject id or a valid national ID number")
            subject_id = await matching.find(tx, at_rest, Who(national_id=nid))
        assert subject_id is not None
        if not await matching.resolve_item(tx, item_id, subject_id, actor=actor):
            raise PatientIndexError(f"work-list item {item_id} is not waiting")
        return await matching.survivor(tx, subject_id)


async def undo_unmatched(db: Database, item_id: int, *, actor: str, since_ms: int) -> int:
    """Undo ``actor``'s match of a work-list item made since ``since_ms`` (audited); returns the subject it left."""
    async with db.transaction() as tx:
        subject_id = await matching.unresolve_item(tx, item_id, actor=actor, since_ms=since_ms)
    if subject_id is None:
        raise PatientIndexError(f"work-list item {item_id} has no match of {actor} to undo")
    return subject_id


async def outbound_queue(db: Database, *, status: str | None = None, limit: int = 200) -> list[OutboundRow]:
    """Vitals messages for the HIS, newest first; ``status`` pending / done / dead, or all."""
    async with db.transaction() as tx:
        rows = await tx.fetch("SELECT id, payload, status, attempts, next_attempt_ms, last_error, created_ms, "
                              "updated_ms FROM outbox WHERE topic = $1 AND ($2 = '' OR status = $3) "
                              "ORDER BY id DESC LIMIT $4", VITALS_TOPIC, status or "", status or "", limit)
    out = []
    for r in rows:
        p = msgspec.json.decode(r["payload"])
        out.append(OutboundRow(r["id"], control_id(r["id"]), p.get("hub_id", ""), p.get("session_id", ""),
                               r["status"], r["attempts"], r["next_attempt_ms"], r["last_error"], r["created_ms"],
                               r["updated_ms"]))
    return out


async def replay_outbound(db: Database, message_id: int, *, actor: str) -> None:
    """Queue a dead vitals message again (same control id; audited)."""
    await outbox.replay(db, message_id, actor=actor)


async def results_of(db: Database, subject_id: int) -> list[ResultRow]:
    """Every result of a person (including subjects merged into her), newest observation first."""
    async with db.transaction() as tx:
        target = await matching.survivor(tx, subject_id)
        ids, frontier = [target], [target]
        while frontier:  # every subject merged into her, transitively
            merged = [int(r["id"]) for f in frontier
                      for r in await tx.fetch("SELECT id FROM subjects WHERE merged_into = $1", f)]
            frontier = [m for m in merged if m not in ids]
            ids += frontier
        rows = []
        for sid in ids:
            rows += await tx.fetch("SELECT id, subject_id, source, kind, code, value, unit, observed_ms, created_ms "
                                   "FROM results WHERE subject_id = $1", sid)
    rows.sort(key=lambda r: (-(r["observed_ms"] or 0), -r["id"]))
    return [ResultRow(**dict(r)) for r in rows]
