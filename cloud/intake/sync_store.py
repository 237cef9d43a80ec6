"""The ingest transaction: one batch, stored exactly once, in ONE database transaction.

Order inside the transaction (docs/protocol.md §2):

1. lock the ``sync_state`` row of ``(hub_id, epoch)`` (``SELECT ... FOR UPDATE``): two
   workers receiving the same hub's batches serialise here, so the mark is monotonic;
2. decide: gap (first_seq > mark + 1), duplicate (last_seq <= mark), or new records;
3. stations and devices first seen; subjects upserted by blind index; sessions opened;
4. readings inserted ``ON CONFLICT DO NOTHING`` (PostgreSQL: one ``INSERT ... SELECT FROM
   unnest(...)`` statement per batch); late bindings; sessions closed;
5. outbound work enqueued (:mod:`cloud.outbox`);
6. the mark advanced to ``last_seq``.

A crash anywhere before COMMIT leaves nothing behind; the hub resends and step 2 decides again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import msgspec

from cloud import audit, outbox
from cloud.db.engine import Tx, epoch_to_db
from cloud.intake.validate import Refusal
from cloud.records.crypto_at_rest import AtRest
from protocol import idnum
from protocol.envelope import BatchHeader
from protocol.model import Reading, ReadingBound, Record, SessionClosed, SessionOpened

_json = msgspec.json.Encoder()


class Outcome(Enum):
    """What the transaction did."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    GAP = "gap"


@dataclass(frozen=True)
class StoreResult:
    """Outcome, the mark after the transaction, and how many records were new."""

    outcome: Outcome
    acked_through: int
    new_records: int = 0
    new_readings: int = 0
    first_seen: frozenset[tuple[str, str, str]] = frozenset()  #: ("station"|"device", hub, id) inserted
    refused: tuple[tuple[int, str], ...] = ()  #: (seq, reason) of the batch's records refused one by one
    config_version: int = 0  #: the hub's configuration version, read in the same transaction (when asked)


_PG_READINGS = """
INSERT INTO readings (hub_id, epoch, received_ms, seq, at_ms, uid, device_id, station_id, kind, session_id,
                      observations, device_time, status, raw)
SELECT $1, $2, $3, t.seq, t.at_ms, t.uid, t.device_id, t.station_id, t.kind, t.session_id,
       t.observations, t.device_time, t.status, t.raw
FROM unnest($4::bigint[], $5::bigint[], $6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[],
            $11::text[], $12::text[], $13::text[], $14::bytea[])
     AS t(seq, at_ms, uid, device_id, station_id, kind, session_id, observations, device_time, status, raw)
ON CONFLICT DO NOTHING"""
_SQLITE_READINGS = """
INSERT INTO readings (hub_id, epoch, received_ms, seq, at_ms, uid, device_id, station_id, kind, session_id,
                      observations, device_time, status, raw)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING"""
_MARK = "SELECT acked_through FROM sync_state WHERE hub_id = $1 AND epoch = $2"
_MARK_FOR_UPDATE = "SELECT acked_through FROM sync_state WHERE hub_id = $1 AND epoch = $2 FOR UPDATE"


async def lock_mark(tx: Tx, hub_id: str, epoch: int) -> int:
    """The mark of ``(hub_id, epoch)``, its row locked until the transaction ends (created at 0)."""
    sql = _MARK_FOR_UPDATE if tx.dialect == "postgres" else _MARK
    mark = await tx.fetchval(sql, hub_id, epoch)
    if mark is None:
        await tx.execute("INSERT INTO sync_state (hub_id, epoch) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                         hub_id, epoch)
        mark = await tx.fetchval(sql, hub_id, epoch)
    return int(mark)


async def _first_seen(tx: Tx, hub_id: str, readings: list[Reading], opened: list[SessionOpened],
                      now: int, known: set[tuple[str, str, str]]) -> frozenset[tuple[str, str, str]]:
    """Insert stations and devices not in ``known`` (this worker's cache of committed ones)."""
    stations = sorted(s for s in {r.station_id for r in readings} | {s.station_id for s in opened}
                      if ("station", hub_id, s) not in known)
    devices = sorted({(r.device_id, r.station_id) for r in readings
                      if ("device", hub_id, r.device_id) not in known})
    seen = frozenset({("station", hub_id, s) for s in stations} | {("device", hub_id, d) for d, _ in devices})
    if not seen:
        return seen
    if tx.dialect == "postgres":
        await tx.execute("INSERT INTO stations (hub_id, station_id, first_seen_ms) SELECT $1, s, $2 "
                         "FROM unnest($3::text[]) AS s ON CONFLICT DO NOTHING", hub_id, now, stations)
        await tx.execute("INSERT INTO devices (hub_id, device_id, station_id, first_seen_ms) SELECT $1, d, s, $2 "
                         "FROM unnest($3::text[], $4::text[]) AS t(d, s) ON CONFLICT DO NOTHING",
                         hub_id, now, [d for d, _ in devices], [s for _, s in devices])
    else:
        await tx.executemany("INSERT INTO stations (hub_id, station_id, first_seen_ms) VALUES ($1, $2, $3) "
                             "ON CONFLICT DO NOTHING", [(hub_id, s, now) for s in stations])
        await tx.executemany("INSERT INTO devices (hub_id, device_id, station_id, first_seen_ms) "
                             "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                             [(hub_id, d, s, now) for d, s in devices])
    return seen


_UPSERT_BY_INDEX = (
    "INSERT INTO subjects (blind_index, national_id_enc, name_enc, sex, birth_date, mrn, created_ms, updated_ms) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (blind_index) DO UPDATE SET "
    "name_enc = COALESCE(excluded.name_enc, subjects.name_enc), "
    "birth_date = COALESCE(excluded.birth_date, subjects.birth_date), "
    "mrn = COALESCE(excluded.mrn, subjects.mrn), updated_ms = excluded.updated_ms RETURNING id")
_INSERT_ANONYMOUS = ("INSERT INTO subjects (name_enc, sex, birth_date, mrn, created_ms, updated_ms) "
                     "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
_INSERT_SESSION = (
    "INSERT INTO sessions (hub_id, session_id, epoch, seq, station_id, subject_id, source, pregnant_weeks, "
    "opened_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING")
#: PostgreSQL: subject upsert and session insert in one round trip
_PG_SUBJECT_AND_SESSION = (
    "WITH s AS (" + _UPSERT_BY_INDEX + ") INSERT INTO sessions"  # noqa: S608 - constants only
    " (hub_id, session_id, epoch, seq, station_id, "
    "subject_id, source, pregnant_weeks, opened_ms) SELECT $9, $10, $11, $12, $13, s.id, $14, $15, $16 FROM s "
    "ON CONFLICT DO NOTHING")


def seal_subject(s: Any, at_rest: AtRest) -> tuple[Any, ...]:
    """(blind index, sealed ID, sealed name, sex, birth date, MRN) of a protocol Subject; no ID -> two Nones."""
    name = at_rest.seal(s.name, "subjects.name") if s.name else None
    if s.national_id is None:
        return (None, None, name, s.sex, s.birth_date, s.mrn)
    nid = idnum.normalise(s.national_id)
    return (at_rest.blind_index(nid), at_rest.seal(nid, "subjects.national_id"), name, s.sex, s.birth_date, s.mrn)


def _subject_values(s: Any, at_rest: AtRest, now: int) -> tuple[Any, ...]:
    sealed = seal_subject(s, at_rest)
    return (*(sealed[2:] if s.national_id is None else sealed), now, now)


async def upsert_subject(tx: Tx, s: Any, at_rest: AtRest, now: int) -> int:
    """The subject id of a protocol Subject: matched by blind index, else a new row."""
    sql = _INSERT_ANONYMOUS if s.national_id is None else _UPSERT_BY_INDEX
    return int(await tx.fetchval(sql, *_subject_values(s, at_rest, now)))


async def _insert_readings(tx: Tx, hub_id: str, epoch: int, readings: list[Reading], now: int) -> None:
    if not readings:
        return
    obs = [_json.encode(r.observations).decode() for r in readings]
    status = [_json.encode(r.status).decode() for r in readings]
    if tx.dialect == "postgres":
        await tx.execute(_PG_READINGS, hub_id, epoch, now, [r.seq for r in readings], [r.at for r in readings],
                         [r.uid for r in readings], [r.device_id for r in readings],
                         [r.station_id for r in readings], [r.kind for r in readings],
                         [r.session_id for r in readings], obs, [r.device_time for r in readings], status,
                         [r.raw for r in readings])
    else:
        await tx.executemany(_SQLITE_READINGS, [
            (hub_id, epoch, now, r.seq, r.at, r.uid, r.device_id, r.station_id, r.kind, r.session_id, o,
             r.device_time, st, r.raw) for r, o, st in zip(readings, obs, status, strict=True)])


async def _sessions(tx: Tx, hub_id: str, epoch: int, opened: list[SessionOpened], at_rest: AtRest,
                    now: int) -> None:
    for s in opened:
        session = (hub_id, s.session_id, epoch, s.seq, s.station_id)
        tail = (s.subject.source, s.pregnant_weeks, s.at)
        if tx.dialect == "postgres" and s.subject.national_id is not None:
            await tx.execute(_PG_SUBJECT_AND_SESSION, *_subject_values(s.subject, at_rest, now), *session, *tail)
        else:
            sid = await upsert_subject(tx, s.subject, at_rest, now)
            await tx.execute(_INSERT_SESSION, *session, sid, *tail)


async def _after(tx: Tx, hub_id: str, epoch: int, new: list[Record]) -> None:
    """Bindings and closings, then the outbound work they cause."""
    records = [r for r in new if type(r) is ReadingBound or type(r) is SessionClosed]
    for r in records:
        if isinstance(r, ReadingBound):
            await tx.execute(
                "INSERT INTO reading_bindings (hub_id, epoch, seq, reading_uid, session_id, bound_by, at_ms) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
                hub_id, epoch, r.seq, r.reading_uid, r.session_id, r.by, r.at)
            at_ms = int(r.reading_uid.replace("-", "")[:12], 16)  # UUIDv7 time = the reading's time
            await tx.execute("UPDATE readings SET session_id = $1 WHERE hub_id = $2 AND at_ms = $3 AND uid = $4",
                             r.session_id, hub_id, at_ms, r.reading_uid)
        elif isinstance(r, SessionClosed):
            n = await tx.execute("UPDATE sessions SET closed_ms = $1, close_reason = $2 "
                                 "WHERE hub_id = $3 AND session_id = $4", r.at, r.reason, hub_id, r.session_id)
            if not n:  # opened before this cloud knew the hub (e.g. a restored hub): keep the visit
                await tx.execute(
                    "INSERT INTO sessions (hub_id, session_id, epoch, seq, station_id, opened_ms, closed_ms, "
                    "close_reason) VALUES ($1, $2, $3, $4, '', $5, $6, $7) ON CONFLICT DO NOTHING",
                    hub_id, r.session_id, epoch, r.seq, r.at, r.at, r.reason)
    for r in records:
        if isinstance(r, SessionClosed):
            await outbox.record_event(tx, "visit.closed", f"visit.closed/{hub_id}/{r.session_id}",
                                      {"hub_id": hub_id, "session_id": r.session_id})
        elif isinstance(r, ReadingBound):
            await outbox.record_event(tx, "visit.updated", f"visit.updated/{hub_id}/{epoch}/{r.seq}",
                                      {"hub_id": hub_id, "session_id": r.session_id, "reading_uid": r.reading_uid})


async def store_batch(tx: Tx, header: BatchHeader, records: list[Record], at_rest: AtRest, now: int,
                      actor: str, known: set[tuple[str, str, str]] | None = None) -> StoreResult:
    """Store one opened, validated batch (see the module docstring for the order)."""
    hub_id, epoch = header.hub_id, epoch_to_db(header.epoch)
    mark = await lock_mark(tx, hub_id, epoch)
    if header.first_seq > mark + 1:
        await audit.write(tx, actor=actor, action="batch.gap", outcome="refused", hub_id=hub_id, reason="gap",
                          detail={"epoch": header.epoch, "first_seq": header.first_seq, "expected_seq": mark + 1})
        return StoreResult(Outcome.GAP, mark)
    if header.last_seq <= mark:
        await tx.execute("UPDATE sync_state SET duplicates = duplicates + 1 WHERE hub_id = $1 AND epoch = $2",
                         hub_id, epoch)
        await audit.write(tx, actor=actor, action="batch.duplicate", outcome="ignored", hub_id=hub_id,
                          reason="duplicate", detail={"epoch": header.epoch, "first_seq": header.first_seq,
                                                      "last_seq": header.last_seq, "acked_through": mark})
        return StoreResult(Outcome.DUPLICATE, mark)
    new = [r for r in records if r.seq > mark]  # records refused one by one are not in ``records``
    count = header.last_seq - max(mark, header.first_seq - 1)  #: seqs this batch adds (refused ones included)
    readings = [r for r in new if type(r) is Reading]
    opened = [r for r in new if type(r) is SessionOpened]
    seen = await _first_seen(tx, hub_id, readings, opened, now, known or set())
    await _sessions(tx, hub_id, epoch, opened, at_rest, now)
    await _insert_readings(tx, hub_id, epoch, readings, now)
    await _after(tx, hub_id, epoch, new)
    await tx.execute("UPDATE sync_state SET acked_through = $1, batches = batches + 1, records = records + $2, "
                     "last_batch_ms = $3 WHERE hub_id = $4 AND epoch = $5",
                     header.last_seq, count, now, hub_id, epoch)
    return StoreResult(Outcome.STORED, header.last_seq, count, len(readings), seen)


# --- records refused one by one (cloud/intake/validate.py, docs/protocol.md §3.1) ---------------

async def record_refusals(tx: Tx, header: BatchHeader, refusals: Sequence[Refusal], result: StoreResult, now: int,
                          actor: str) -> None:
    """Keep the refused records of a stored batch, in its transaction (both dialects run this).

    Only seqs past the mark the batch found are new (``acked_through - new_records``); the
    rest were refused, or stored, by an earlier copy of the batch. One audit entry per batch.
    """
    if result.outcome is not Outcome.STORED or not refusals:
        return
    before = result.acked_through - result.new_records
    new = [f for f in refusals if f.seq > before]
    if not new:
        return
    hub_id, epoch = header.hub_id, epoch_to_db(header.epoch)
    await tx.executemany(
        "INSERT INTO refused_records (hub_id, epoch, seq, record_type, reason, message, at_ms, received_ms) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
        [(hub_id, epoch, f.seq, f.record_type, f.code, f.message[:300], f.at, now) for f in new])
    await audit.write(tx, actor=actor, action="record.refused", outcome="refused", hub_id=hub_id,
                      reason=new[0].code, detail={"epoch": header.epoch, "refused": [
                          {"seq": f.seq, "type": f.record_type, "reason": f.code} for f in new[:50]],
                          "count": len(new)})


def may_hold_refusals(header: BatchHeader, refusals: Sequence[Refusal], result: StoreResult) -> bool:
    """Whether the cloud may hold refused records of this batch's seqs (else no query is needed)."""
    if result.outcome is Outcome.GAP:
        return False
    if refusals or result.outcome is Outcome.DUPLICATE:
        return True
    return result.acked_through - result.new_records >= header.first_seq  # it overlapped the mark


async def refused_between(db: Any, header: BatchHeader) -> tuple[tuple[int, str], ...]:
    """(seq, reason) of every refused record the cloud holds in the batch's seq range."""
    rows = await db.fetch("SELECT seq, reason FROM refused_records WHERE hub_id = $1 AND epoch = $2 "
                          "AND seq BETWEEN $3 AND $4 ORDER BY seq", header.hub_id, epoch_to_db(header.epoch),
                          header.first_seq, header.last_seq)
    return tuple((int(r["seq"]), str(r["reason"])) for r in rows)
