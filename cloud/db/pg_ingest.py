"""The PostgreSQL ingest hot path: the whole store transaction as ONE server-side function call.

Every round trip to the database costs far more than the SQL it carries (a context switch
to the backend and back), so on PostgreSQL :func:`store_batch_pg` sends the opened batch as
column arrays to ``mchub_ingest(...)`` (created by migration 2) and gets back the outcome in
a single statement, which PostgreSQL runs as one transaction. The function does exactly what
:func:`cloud.sync_store.store_batch` does on SQLite, in the same order: lock the mark row,
gap / duplicate (audited), stations and devices, subjects by blind index and sessions,
readings (``ON CONFLICT DO NOTHING``), bindings, closings with their outbox rows, the mark.
Records at or below the mark are skipped inside the function, under the row lock.
"""

from __future__ import annotations

from typing import Any

import msgspec

from cloud.crypto_at_rest import AtRest
from cloud.db.engine import Database, epoch_to_db
from cloud.sync_store import Outcome, StoreResult, seal_subject
from protocol.envelope import BatchHeader
from protocol.model import Reading, ReadingBound, Record, SessionClosed, SessionOpened

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
    INSERT INTO outbox (topic, idempotency_key, payload, next_attempt_ms, created_ms, updated_ms)
        SELECT 'visit.closed', 'visit.closed/' || p_hub || '/' || c.s,
               json_build_object('hub_id', p_hub, 'session_id', c.s)::text, p_now, p_now, p_now
        FROM unnest(c_seq, c_session) AS c(q, s) WHERE c.q > v_mark
        UNION ALL
        SELECT 'visit.updated', 'visit.updated/' || p_hub || '/' || p_epoch || '/' || b.q,
               json_build_object('hub_id', p_hub, 'session_id', b.s, 'reading_uid', b.u)::text, p_now, p_now, p_now
        FROM unnest(b_seq, b_session, b_uid) AS b(q, s, u) WHERE b.q > v_mark
        ON CONFLICT (idempotency_key) DO NOTHING;
    UPDATE sync_state SET acked_through = p_last, batches = batches + 1,
        records = records + (p_last - GREATEST(v_mark, p_first - 1)), last_batch_ms = p_now
        WHERE hub_id = p_hub AND epoch = p_epoch;
    RETURN QUERY SELECT 'stored'::text, p_last, p_last - GREATEST(v_mark, p_first - 1), v_n;
END $$ LANGUAGE plpgsql;
"""

_CALL = """SELECT * FROM mchub_ingest($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
    $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38,
    $39, $40, $41, $42, $43)"""
#: readings per batch from which the rows travel by COPY instead of as arrays
STAGE_FROM = 200
_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS mchub_incoming (seq BIGINT, at_ms BIGINT, uid UUID, device_id TEXT, "
          "station_id TEXT, kind TEXT, session_id TEXT, observations TEXT, device_time TEXT, status TEXT, "
          "raw BYTEA) ON COMMIT DELETE ROWS")
_STAGE_COLUMNS = ["seq", "at_ms", "uid", "device_id", "station_id", "kind", "session_id", "observations",
                  "device_time", "status", "raw"]
_json = msgspec.json.Encoder()


def _reading_rows(readings: list[Reading]) -> list[tuple[Any, ...]]:
    return [(r.seq, r.at, r.uid, r.device_id, r.station_id, r.kind, r.session_id, _json.encode(r.observations).decode(),
             r.device_time, _json.encode(r.status).decode(), r.raw) for r in readings]


def _arrays(records: list[Record], at_rest: AtRest, staged: bool) -> list[Any]:
    rd = [r for r in records if type(r) is Reading]
    op = [r for r in records if type(r) is SessionOpened]
    cl = [r for r in records if type(r) is SessionClosed]
    bd = [r for r in records if type(r) is ReadingBound]
    sealed = [(seal_subject(o.subject, at_rest), o) for o in op]
    # upsert subjects in blind-index order, so two batches naming the same people never deadlock
    sealed.sort(key=lambda so: (so[0][0] is None, so[0][0] or ""))
    subjects, op = [so[0] for so in sealed], [so[1] for so in sealed]
    columns = [list(c) for c in zip(*_reading_rows(rd), strict=True)] if rd and not staged else [[]] * 11
    devices = sorted({(r.device_id, r.station_id) for r in rd})
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


async def store_batch_pg(db: Database, header: BatchHeader, records: list[Record], at_rest: AtRest, now: int,
                         actor: str) -> StoreResult:
    """Store one opened, validated batch with a single call of ``mchub_ingest``.

    Small batches (the usual sync every few seconds) are one statement, one round trip. From
    :data:`STAGE_FROM` readings on, the rows go by COPY into a per-session staging table in the
    same transaction first: COPY encodes rows much faster than asyncpg encodes arrays.
    """
    head = (header.hub_id, epoch_to_db(header.epoch), header.first_seq, header.last_seq, now, actor,
            str(header.epoch))
    readings = [r for r in records if type(r) is Reading]
    if len(readings) < STAGE_FROM:
        row = await db.fetchrow(_CALL, *head, *_arrays(records, at_rest, staged=False))
    else:
        async with db.transaction() as tx:
            await tx.execute(_STAGE)
            await tx.raw.copy_records_to_table("mchub_incoming", records=_reading_rows(readings),
                                               columns=_STAGE_COLUMNS)
            row = await tx.fetchrow(_CALL, *head, *_arrays(records, at_rest, staged=True))
    return StoreResult(Outcome(row["res_outcome"]), int(row["res_mark"]), int(row["res_records"]),
                       int(row["res_readings"]))
