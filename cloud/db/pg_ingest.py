"""The PostgreSQL ingest hot path: the whole store transaction as ONE server-side function call.

(Large batches add a COPY of their readings to the same transaction: :func:`store_batch_pg`.)

Every round trip to the database costs far more than the SQL it carries (a context switch
to the backend and back), so on PostgreSQL :func:`store_batch_pg` sends the opened batch as
column arrays to ``mchub_ingest_checked(...)`` (migration 8: checks that the hub is active and
the signing key valid, then calls ``mchub_ingest(...)`` of migration 2) and gets back the outcome in
a single statement, which PostgreSQL runs as one transaction. The function does exactly what
:func:`cloud.intake.sync_store.store_batch` does on SQLite, in the same order: lock the mark row,
gap / duplicate (audited), stations and devices, subjects by blind index and sessions,
readings (``ON CONFLICT DO NOTHING``), bindings, closings with their change-feed rows (outbox,
``done``: see :func:`cloud.outbox.record_event`), the mark.
Records at or below the mark are skipped inside the function, under the row lock.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

import msgspec
from asyncpg.pgproto.pgproto import UUID

from cloud.db.engine import Database, epoch_to_db
from cloud.errors import CloudError, UniqueViolation
from cloud.fleet.presence import Report
from cloud.intake.sync_store import Outcome, StoreResult, lock_mark, record_refusals, seal_subject
from cloud.intake.validate import Refusal
from cloud.records.crypto_at_rest import AtRest
from protocol.batch import Columns
from protocol.envelope import BatchHeader
from protocol.ids import reading_uid_ints
from protocol.model import ReadingBound, SessionClosed, SessionOpened

FUNCTION = r"""
CREATE FUNCTION mchub_ingest(
    p_hub TEXT, p_epoch BIGINT, p_first BIGINT, p_last BIGINT, p_now BIGINT, p_actor TEXT, p_epoch_u TEXT,
    r_seq BIGINT[], r_at BIGINT[], r_uid UUID[], r_device TEXT[], r_station TEXT[], r_kind TEXT[],
    r_session TEXT[], r_obs TEXT[], r_dtime TEXT[], r_status TEXT[], r_raw BYTEA[],
    o_seq BIGINT[], o_at BIGINT[], o_session TEXT[], o_station TEXT[], o_source TEXT[], o_weeks INTEGER[],
    o_bi TEXT[], o_nid BYTEA[], o_name BYTEA[], o_sex TEXT[], o_birth TEXT[], o_mrn TEXT[],
    c_seq BIGINT[], c_at BIGINT[], c_session TEXT[], c_reason TEXT[],
    b_seq BIGINT[], b_at BIGINT[], b_uid UUID[], b_uat BIGINT[], b_session TEXT[], b_by TEXT[],
    d_device TEXT[], d_station TEXT[], p_staged BOOLEAN)
RETURNS TABLE (res_outcome TEXT, res_mark BIGINT, res_records BIGINT, res_readings BIGINT) AS $$
DECLARE
    v_mark BIGINT;
    v_subject BIGINT;
    v_n BIGINT;
    i INTEGER;
BEGIN
    SELECT s.acked_through INTO v_mark FROM sync_state s WHERE s.hub_id = p_hub AND s.epoch = p_epoch FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO sync_state (hub_id, epoch) VALUES (p_hub, p_epoch) ON CONFLICT DO NOTHING;
        SELECT s.acked_through INTO v_mark FROM sync_state s
            WHERE s.hub_id = p_hub AND s.epoch = p_epoch FOR UPDATE;
    END IF;
    IF p_first > v_mark + 1 THEN
        INSERT INTO audit_log (at_ms, actor, action, outcome, hub_id, reason, detail) VALUES (p_now, p_actor,
            'batch.gap', 'refused', p_hub, 'gap', json_build_object('epoch', p_epoch_u::numeric,
            'first_seq', p_first, 'expected_seq', v_mark + 1)::text);
        RETURN QUERY SELECT 'gap'::text, v_mark, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    IF p_last <= v_mark THEN
        UPDATE sync_state SET duplicates = duplicates + 1 WHERE hub_id = p_hub AND epoch = p_epoch;
        INSERT INTO audit_log (at_ms, actor, action, outcome, hub_id, reason, detail) VALUES (p_now, p_actor,
            'batch.duplicate', 'ignored', p_hub, 'duplicate', json_build_object('epoch', p_epoch_u::numeric,
            'first_seq', p_first, 'last_seq', p_last, 'acked_through', v_mark)::text);
        RETURN QUERY SELECT 'duplicate'::text, v_mark, 0::bigint, 0::bigint;
        RETURN;
    END IF;
    INSERT INTO stations (hub_id, station_id, first_seen_ms)
        SELECT DISTINCT p_hub, st, p_now FROM unnest(d_station || o_station) AS st ON CONFLICT DO NOTHING;
    INSERT INTO devices (hub_id, device_id, station_id, first_seen_ms)
        SELECT DISTINCT ON (d) p_hub, d, st, p_now FROM unnest(d_device, d_station) AS t(d, st)
        ON CONFLICT DO NOTHING;
    FOR i IN 1 .. coalesce(array_length(o_seq, 1), 0) LOOP
        CONTINUE WHEN o_seq[i] <= v_mark;
        IF o_bi[i] IS NULL THEN
            INSERT INTO subjects (name_enc, sex, birth_date, mrn, created_ms, updated_ms)
                VALUES (o_name[i], o_sex[i], o_birth[i], o_mrn[i], p_now, p_now) RETURNING id INTO v_subject;
        ELSE
            INSERT INTO subjects (blind_index, national_id_enc, name_enc, sex, birth_date, mrn, created_ms,
                                  updated_ms)
                VALUES (o_bi[i], o_nid[i], o_name[i], o_sex[i], o_birth[i], o_mrn[i], p_now, p_now)
                ON CONFLICT (blind_index) DO UPDATE SET
                    name_enc = COALESCE(excluded.name_enc, subjects.name_enc),
                    birth_date = COALESCE(excluded.birth_date, subjects.birth_date),
                    mrn = COALESCE(excluded.mrn, subjects.mrn), updated_ms = excluded.updated_ms
                RETURNING id INTO v_subject;
        END IF;
        INSERT INTO sessions (hub_id, session_id, epoch, seq, station_id, subject_id, source, pregnant_weeks,
                              opened_ms)
            VALUES (p_hub, o_session[i], p_epoch, o_seq[i], o_station[i], v_subject, o_source[i], o_weeks[i],
                    o_at[i]) ON CONFLICT DO NOTHING;
    END LOOP;
    IF p_staged THEN  -- a large batch was COPYed into the session's staging table
        EXECUTE 'INSERT INTO readings (hub_id, epoch, received_ms, seq, at_ms, uid, device_id, station_id, kind, '
                'session_id, observations, device_time, status, raw) SELECT $1, $2, $3, t.* FROM mchub_incoming t '
                'WHERE t.seq > $4 ON CONFLICT DO NOTHING' USING p_hub, p_epoch, p_now, v_mark;
    ELSE
        INSERT INTO readings (hub_id, epoch, received_ms, seq, at_ms, uid, device_id, station_id, kind, session_id,
                              observations, device_time, status, raw)
            SELECT p_hub, p_epoch, p_now, t.* FROM unnest(r_seq, r_at, r_uid, r_device, r_station, r_kind,
                                                          r_session, r_obs, r_dtime, r_status, r_raw)
                AS t(seq, at_ms, uid, device_id, station_id, kind, session_id, observations, device_time, status,
                     raw)
            WHERE t.seq > v_mark
            ON CONFLICT DO NOTHING;
    END IF;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    FOR i IN 1 .. coalesce(array_length(b_seq, 1), 0) LOOP
        CONTINUE WHEN b_seq[i] <= v_mark;
        INSERT INTO reading_bindings (hub_id, epoch, seq, reading_uid, session_id, bound_by, at_ms)
            VALUES (p_hub, p_epoch, b_seq[i], b_uid[i], b_session[i], b_by[i], b_at[i]) ON CONFLICT DO NOTHING;
        UPDATE readings SET session_id = b_session[i] WHERE hub_id = p_hub AND at_ms = b_uat[i] AND uid = b_uid[i];
    END LOOP;
    FOR i IN 1 .. coalesce(array_length(c_seq, 1), 0) LOOP
        CONTINUE WHEN c_seq[i] <= v_mark;
        UPDATE sessions SET closed_ms = c_at[i], close_reason = c_reason[i]
            WHERE hub_id = p_hub AND session_id = c_session[i];
        IF NOT FOUND THEN
            INSERT INTO sessions (hub_id, session_id, epoch, seq, station_id, opened_ms, closed_ms, close_reason)
                VALUES (p_hub, c_session[i], p_epoch, c_seq[i], '', c_at[i], c_at[i], c_reason[i])
                ON CONFLICT DO NOTHING;
        END IF;
    END LOOP;
    INSERT INTO outbox (topic, idempotency_key, payload, status, next_attempt_ms, created_ms, updated_ms)
        SELECT 'visit.closed', 'visit.closed/' || p_hub || '/' || c.s,
               json_build_object('hub_id', p_hub, 'session_id', c.s)::text, 'done', p_now, p_now, p_now
        FROM unnest(c_seq, c_session) AS c(q, s) WHERE c.q > v_mark
        UNION ALL
        SELECT 'visit.updated', 'visit.updated/' || p_hub || '/' || p_epoch || '/' || b.q,
               json_build_object('hub_id', p_hub, 'session_id', b.s, 'reading_uid', b.u)::text, 'done',
               p_now, p_now, p_now
        FROM unnest(b_seq, b_session, b_uid) AS b(q, s, u) WHERE b.q > v_mark
        ON CONFLICT (idempotency_key) DO NOTHING;
    UPDATE sync_state SET acked_through = p_last, batches = batches + 1,
        records = records + (p_last - GREATEST(v_mark, p_first - 1)), last_batch_ms = p_now
        WHERE hub_id = p_hub AND epoch = p_epoch;
    RETURN QUERY SELECT 'stored'::text, p_last, p_last - GREATEST(v_mark, p_first - 1), v_n;
END $$ LANGUAGE plpgsql;
"""

_SIGNATURE = FUNCTION[FUNCTION.index("mchub_ingest(") + 13:FUNCTION.index(")\nRETURNS")]
_RESULT = "TABLE (res_outcome TEXT, res_mark BIGINT, res_records BIGINT, res_readings BIGINT)"
#: migration 8: the same call, but first the hub and the signing key are checked inside the
#: transaction, so a worker may cache verified public keys and still never store a batch of
#: a hub revoked (or a key expired) before the transaction started
CHECKED_FUNCTION = f"""
CREATE FUNCTION mchub_ingest_checked(p_key TEXT, {_SIGNATURE}) RETURNS {_RESULT} AS $$
DECLARE
    v_status TEXT;
    v_key_ok BOOLEAN;
BEGIN
    SELECT h.status, k.revoked_ms IS NULL AND k.valid_from_ms <= p_now
                     AND (k.valid_to_ms IS NULL OR k.valid_to_ms > p_now)
        INTO v_status, v_key_ok
        FROM hubs h LEFT JOIN hub_keys k ON k.hub_id = h.hub_id AND k.key_id = p_key WHERE h.hub_id = p_hub;
    IF v_status IS NULL THEN
        RETURN QUERY SELECT 'unknown_hub'::text, 0::bigint, 0::bigint, 0::bigint;
    ELSIF v_status <> 'active' THEN
        RETURN QUERY SELECT 'revoked'::text, 0::bigint, 0::bigint, 0::bigint;
    ELSIF v_key_ok IS NOT TRUE THEN
        RETURN QUERY SELECT 'unknown_key'::text, 0::bigint, 0::bigint, 0::bigint;
    ELSE
        RETURN QUERY SELECT * FROM mchub_ingest({", ".join(p.split()[0] for p in _SIGNATURE.split(","))});
    END IF;
END $$ LANGUAGE plpgsql;
"""  # noqa: S608 - built from the constant FUNCTION above
_INGEST = "SELECT * FROM mchub_ingest_checked(" + ", ".join(f"${i}" for i in range(1, 45)) + ")"  # noqa: S608
#: the store call, and in the same statement (so the same transaction and commit) what an
#: accepted batch tells about its hub (cloud.fleet.presence.SEEN, when $47 is true) and the
#: hub's configuration version for the ack's X-Mchub-Config-Version: before, these were a
#: second transaction per batch (BEGIN, SELECT, UPDATE, COMMIT: four round trips and a
#: second WAL flush after the ack's). ``r`` is read before the hub row is locked (the
#: EXISTS needs it), so the locks are taken in the order sync_state, hubs, as before.
_CALL = (f"WITH r AS ({_INGEST}), seen AS (UPDATE hubs SET online = TRUE, last_seen_ms = $6, "  # noqa: S608
         "config_applied = COALESCE($45, config_applied), devices_down = COALESCE($46, devices_down) "
         "WHERE hub_id = $2 AND status = 'active' AND $47 "
         "AND EXISTS (SELECT 1 FROM r WHERE r.res_outcome IN ('stored', 'duplicate'))) "
         "SELECT r.*, (SELECT v.version FROM hub_config_versions v WHERE v.hub_id = $2) AS res_config FROM r")
#: readings per batch from which the rows travel by COPY instead of as arrays
STAGE_FROM = 200
_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS mchub_incoming (seq BIGINT, at_ms BIGINT, uid UUID, device_id TEXT, "
          "station_id TEXT, kind TEXT, session_id TEXT, observations TEXT, device_time TEXT, status TEXT, "
          "raw BYTEA) ON COMMIT DELETE ROWS")
_STAGE_COLUMNS = ["seq", "at_ms", "uid", "device_id", "station_id", "kind", "session_id", "observations",
                  "device_time", "status", "raw"]
_READINGS_COLUMNS = ["hub_id", "epoch", "received_ms", *_STAGE_COLUMNS]
_json = msgspec.json.Encoder()


class SignerRefused(CloudError):
    """The transaction found the hub unknown or revoked, or the signing key no longer valid."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  #: unknown_hub, revoked or unknown_key


class _Status:
    """JSON of a reading's status tuple, remembered (a hub uses a handful of distinct ones)."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, ...], str] = {}

    def __call__(self, status: tuple[str, ...]) -> str:
        text = self._known.get(status)
        if text is None:
            text = _json.encode(status).decode()
            if len(self._known) < 4096:
                self._known[status] = text
        return text


_status = _Status()


class _ObsJson(msgspec.Struct, omit_defaults=True, gc=False):
    """The JSON form of :class:`protocol.model.Observation` (same fields, order and defaults),
    built positionally from a wire observation: half the cost of an Observation per value."""

    code: str
    value: float
    unit: str
    original_value: float | None = None
    original_unit: str | None = None
    flag: str | None = None


def reading_rows(cols: Columns, after: int = 0, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """``prefix`` + one row of :data:`_STAGE_COLUMNS` per reading with ``seq > after``.

    Built straight from the decoded columns: observations as the JSON of
    :class:`protocol.model.Observation` (what ``to_json`` of a reading holds), the status as
    a JSON list, the uid as asyncpg's own UUID type (encoded without parsing text).
    """
    skip = bisect.bisect_right(cols.seq, after)  # seqs increase, with other records between readings
    seqs, ats = cols.seq[skip:], cols.at[skip:]
    uids = [UUID(x.to_bytes(16, "big")) for x in reading_uid_ints(cols.hub_id, cols.epoch, seqs, ats)]
    enc, status, obs, fields = _json.encode, _status, _ObsJson, msgspec.structs.astuple
    return [(*prefix, seq, at, uid, w.device_id, w.station_id, w.kind, w.session_id,
             enc([obs(*fields(o)) for o in w.observations]).decode(), w.device_time, status(w.status), w.raw)
            for seq, at, uid, w in zip(seqs, ats, uids, cols.readings[skip:], strict=True)]


def _arrays(cols: Columns, rows: list[tuple[Any, ...]], at_rest: AtRest, staged: bool) -> list[Any]:
    op = [r for r in cols.others if type(r) is SessionOpened]
    cl = [r for r in cols.others if type(r) is SessionClosed]
    bd = [r for r in cols.others if type(r) is ReadingBound]
    sealed = [(seal_subject(o.subject, at_rest), o) for o in op]
    # upsert subjects in blind-index order, so two batches naming the same people never deadlock
    sealed.sort(key=lambda so: (so[0][0] is None, so[0][0] or ""))
    subjects, op = [so[0] for so in sealed], [so[1] for so in sealed]
    columns = [list(c) for c in zip(*rows, strict=True)] if rows and not staged else [[]] * 11
    devices = sorted({(r.device_id, r.station_id) for r in cols.readings})
    return [
        *columns,
        [o.seq for o in op], [o.at for o in op], [o.session_id for o in op], [o.station_id for o in op],
        [o.subject.source for o in op], [o.pregnant_weeks for o in op],
        *([s[i] for s in subjects] for i in range(6)),  # blind index, ID, name, sex, birth date, MRN
        [c.seq for c in cl], [c.at for c in cl], [c.session_id for c in cl], [c.reason for c in cl],
        [b.seq for b in bd], [b.at for b in bd], [b.reading_uid for b in bd],
        [int(b.reading_uid.replace("-", "")[:12], 16) for b in bd],  # UUIDv7 time = the reading's time
        [b.session_id for b in bd], [b.by for b in bd],
        [d for d, _ in devices], [st for _, st in devices], staged,
    ]


def _result(row: Any) -> StoreResult:
    if row["res_outcome"] in {"unknown_hub", "revoked", "unknown_key"}:
        raise SignerRefused(row["res_outcome"])
    return StoreResult(Outcome(row["res_outcome"]), int(row["res_mark"]), int(row["res_records"]),
                       int(row["res_readings"]), config_version=int(row["res_config"] or 0))


async def store_batch_pg(db: Database, header: BatchHeader, cols: Columns, at_rest: AtRest, now: int,
                         actor: str, refusals: Sequence[Refusal] = (), seen: Report | None = None) -> StoreResult:
    """Store one opened, validated batch in one transaction; raises SignerRefused.

    With ``seen`` (a batch that came over HTTP), an accepted batch (stored or duplicate)
    also marks its hub online and keeps its configuration report
    (:func:`cloud.fleet.presence.on_batch`) in the same statement; the result carries the
    hub's configuration version either way.

    Small batches (the usual sync every few seconds) are one statement, one round trip:
    ``mchub_ingest_checked`` with the readings as arrays. From :data:`STAGE_FROM` readings on,
    the transaction first locks the hub's mark row, then COPYs the readings past the mark
    straight into ``readings`` (COPY is several times cheaper than INSERT for the server, and
    asyncpg encodes COPY rows faster than arrays), then calls the function for the rest.
    Under the mark's row lock a reading past the mark cannot exist yet, because readings and
    the mark are only ever written together; should one exist anyway (written by something
    else), the COPY fails on the primary key, and the batch is stored again through a
    staging table with ``INSERT ... ON CONFLICT DO NOTHING``.

    ``cols`` holds the records that validated; ``refusals`` (records refused one by one) are
    kept by :func:`cloud.intake.sync_store.record_refusals` in the same transaction, exactly as on SQLite.
    """
    key = header.signer_key_id.hex()
    head = (key, header.hub_id, epoch_to_db(header.epoch), header.first_seq, header.last_seq, now, actor,
            str(header.epoch))
    tail = (seen.applied, seen.down, True) if seen is not None else (None, None, False)
    if len(cols.readings) < STAGE_FROM:
        if not refusals:
            return _result(await db.fetchrow(_CALL, *head, *_arrays(cols, reading_rows(cols), at_rest, staged=False),
                                             *tail))
        async with db.transaction() as tx:
            result = _result(await tx.fetchrow(_CALL, *head, *_arrays(cols, reading_rows(cols), at_rest,
                                                                      staged=False), *tail))
            await record_refusals(tx, header, refusals, result, now, actor)
            return result
    try:
        return await _copy_direct(db, header, cols, at_rest, now, head, refusals, actor, tail)
    except UniqueViolation:
        pass
    async with db.transaction() as tx:
        await tx.execute(_STAGE)
        await tx.raw.copy_records_to_table("mchub_incoming", records=reading_rows(cols), columns=_STAGE_COLUMNS)
        result = _result(await tx.fetchrow(_CALL, *head, *_arrays(cols, [], at_rest, staged=True), *tail))
        await record_refusals(tx, header, refusals, result, now, actor)
        return result


async def _copy_direct(db: Database, header: BatchHeader, cols: Columns, at_rest: AtRest, now: int,
                       head: tuple[Any, ...], refusals: Sequence[Refusal], actor: str,
                       tail: tuple[Any, ...]) -> StoreResult:
    async with db.transaction() as tx:
        hub, epoch = header.hub_id, epoch_to_db(header.epoch)
        mark = await lock_mark(tx, hub, epoch)
        copied = 0
        if header.first_seq <= mark + 1 and header.last_seq > mark:  # neither a gap nor a duplicate
            rows = reading_rows(cols, after=mark, prefix=(hub, epoch, now))
            if rows:
                await tx.raw.copy_records_to_table("readings", records=rows, columns=_READINGS_COLUMNS)
            copied = len(rows)
        result = _result(await tx.fetchrow(_CALL, *head, *_arrays(cols, [], at_rest, staged=False), *tail))
        await record_refusals(tx, header, refusals, result, now, actor)
        return StoreResult(result.outcome, result.acked_through, result.new_records, result.new_readings + copied,
                           config_version=result.config_version)
