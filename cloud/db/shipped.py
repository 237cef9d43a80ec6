# ruff: noqa: E501, W291 - verbatim text of shipped migrations: its layout is part of what is pinned
"""The SQL text of shipped cloud migrations that used to be read from other modules, frozen.

A migration runs once per database: its text must never change after it ships, or fresh
databases and migrated ones drift apart (issue 19, finding 7). Migrations 2, 4, 5, 7, 8 and
9 once read live constants (``pg_ingest.FUNCTION``, ``integration/schema.py``,
``mch/schema.py``, ``db/audit_schema.py``); their text as shipped is copied here verbatim and
pinned by ``tests/cloud/db/test_shipped_migrations.py``. Never edit this file: a change to
the schema or to ``mchub_ingest`` is a NEW migration in ``cloud/db/migrations.py`` (the live
function text stays in :mod:`cloud.db.pg_ingest` for that).
"""

from __future__ import annotations

# migration 2, ingest function (PostgreSQL only): mchub_ingest as first shipped
V2_PG: str = r"""
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


# migration 4, hospital integration (both dialects). What it builds:
# Migration 4 (hospital integration): written once in PostgreSQL SQL, translated for SQLite.
#
# * ``hl7_inbound`` — every MLLP frame as received (raw bytes, sealed with the at-rest key),
#   its ACK code and reason; ``dedup_key`` (sender + MSH-10 of accepted messages) detects
#   resends; ``processed_ms`` / ``process_error`` record the processing step.
# * ``subject_identifiers`` — identifiers of a subject learned from the HIS (MRN per assigning
#   authority); the national ID stays in ``subjects`` (sealed + blind index).
# * ``unmatched`` — the work list of results and studies whose patient is not known yet.
# * ``dicom_instances`` — the index of stored DICOM instances.
# * ``results.origin`` — what produced a result row (``hl7:<inbound uid>``), so a whole
#   message's results are re-attached at once when its patient becomes known.
# * ``integration_switches`` + a trigger on ``outbox``: when ingest enqueues ``visit.closed``
#   (inside the ingest transaction) and the HIS feed is enabled, the same transaction also
#   enqueues ``his.vitals`` with the same payload — no change to the ingest code paths.
V4: str = r"""
CREATE TABLE hl7_inbound (
    id BIGSERIAL PRIMARY KEY, uid TEXT NOT NULL UNIQUE, received_ms BIGINT NOT NULL, peer TEXT NOT NULL,
    sender TEXT NOT NULL DEFAULT '', control_id TEXT NOT NULL DEFAULT '', message_type TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL, ack_code TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '',
    dedup_key TEXT UNIQUE, duplicates INTEGER NOT NULL DEFAULT 0, raw BYTEA NOT NULL,
    sealed BOOLEAN NOT NULL DEFAULT FALSE, processed_ms BIGINT, process_error TEXT);
CREATE INDEX hl7_inbound_pending ON hl7_inbound (id) WHERE status = 'accepted' AND processed_ms IS NULL;
CREATE INDEX hl7_inbound_received ON hl7_inbound (received_ms);
CREATE TABLE subject_identifiers (
    authority TEXT NOT NULL, value TEXT NOT NULL, subject_id BIGINT NOT NULL REFERENCES subjects(id),
    source TEXT NOT NULL, created_ms BIGINT NOT NULL, PRIMARY KEY (authority, value));
CREATE INDEX subject_identifiers_value ON subject_identifiers (value);
CREATE TABLE unmatched (
    id BIGSERIAL PRIMARY KEY, kind TEXT NOT NULL, ref TEXT NOT NULL, mrn_authority TEXT NOT NULL DEFAULT '',
    mrn TEXT NOT NULL DEFAULT '', blind_index TEXT, summary TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'waiting', subject_id BIGINT REFERENCES subjects(id), resolved_by TEXT,
    resolved_ms BIGINT, created_ms BIGINT NOT NULL, UNIQUE (kind, ref));
CREATE INDEX unmatched_waiting_mrn ON unmatched (mrn) WHERE status = 'waiting';
CREATE TABLE dicom_instances (
    sop_instance_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, series_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL, family TEXT NOT NULL, modality TEXT NOT NULL DEFAULT '',
    laterality TEXT NOT NULL DEFAULT '', view_position TEXT NOT NULL DEFAULT '',
    accession TEXT NOT NULL DEFAULT '', study_date TEXT, issuer TEXT NOT NULL DEFAULT '',
    subject_id BIGINT REFERENCES subjects(id), path TEXT NOT NULL, sr_text_enc BYTEA, birads TEXT,
    received_ms BIGINT NOT NULL);
CREATE INDEX dicom_instances_subject ON dicom_instances (subject_id);
CREATE INDEX dicom_instances_study ON dicom_instances (study_uid);
ALTER TABLE results ADD COLUMN origin TEXT;
CREATE INDEX results_origin ON results (origin);
CREATE INDEX results_subject ON results (subject_id);
CREATE TABLE integration_switches (name TEXT PRIMARY KEY, enabled BOOLEAN NOT NULL DEFAULT FALSE);
INSERT INTO integration_switches (name, enabled) VALUES ('his.vitals', FALSE);
"""


# migration 4, PostgreSQL only
V4_PG: str = r"""
CREATE FUNCTION mchub_his_vitals() RETURNS trigger AS $$
BEGIN
    IF NEW.topic = 'visit.closed'
       AND EXISTS (SELECT 1 FROM integration_switches WHERE name = 'his.vitals' AND enabled) THEN
        INSERT INTO outbox (topic, idempotency_key, payload, next_attempt_ms, created_ms, updated_ms)
            VALUES ('his.vitals', 'his.vitals/' || substr(NEW.idempotency_key, 14), NEW.payload,
                    NEW.next_attempt_ms, NEW.created_ms, NEW.updated_ms)
            ON CONFLICT (idempotency_key) DO NOTHING;
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER outbox_his_vitals AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION mchub_his_vitals();
"""


# migration 4, SQLite only
V4_SQLITE: str = r"""
CREATE TRIGGER outbox_his_vitals AFTER INSERT ON outbox FOR EACH ROW
WHEN NEW.topic = 'visit.closed' AND EXISTS (SELECT 1 FROM integration_switches WHERE name = 'his.vitals' AND enabled)
BEGIN
    INSERT OR IGNORE INTO outbox (topic, idempotency_key, payload, next_attempt_ms, created_ms, updated_ms)
        VALUES ('his.vitals', 'his.vitals/' || substr(NEW.idempotency_key, 14), NEW.payload,
                NEW.next_attempt_ms, NEW.created_ms, NEW.updated_ms);
END
"""


# migration 5, MCH cases and upload records (both dialects). What it builds:
# Migration 5: MCH cases, their versioned upload records, follow-up tasks, job state.
#
#     mch_cases      one row per case (cervical, breast, growth, prenatal): its subject, site,
#                    state and what it still misses; ``overrides`` holds staff corrections
#     mch_records    every version of a case's record: the validated payload (our form), the
#                    field errors, and whether it is held, queued, accepted, refused or superseded
#     mch_followups  tasks opened by positive/abnormal results, closed by the next result
#     mch_state      small named values of the MCH jobs (assembler watermark, backfill cursors)
#
# Plus two indexes on tables of others that the assembler's change feed reads by time.
V5: str = r"""
CREATE TABLE mch_cases (
    case_id TEXT PRIMARY KEY, type TEXT NOT NULL, subject_id BIGINT REFERENCES subjects(id),
    site_id TEXT NOT NULL, screened_on TEXT NOT NULL, state TEXT NOT NULL,
    missing TEXT NOT NULL DEFAULT '[]', version INTEGER NOT NULL DEFAULT 0,
    derived TEXT NOT NULL DEFAULT '{}', overrides TEXT NOT NULL DEFAULT '{}',
    sources TEXT NOT NULL DEFAULT '[]', created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL);
CREATE INDEX mch_cases_subject ON mch_cases (subject_id);
CREATE INDEX mch_cases_screened ON mch_cases (screened_on, site_id);
CREATE TABLE mch_records (
    case_id TEXT NOT NULL REFERENCES mch_cases(case_id), version INTEGER NOT NULL,
    payload TEXT NOT NULL, errors TEXT NOT NULL DEFAULT '[]', missing TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL, outbox_key TEXT, platform_error TEXT,
    created_ms BIGINT NOT NULL, uploaded_ms BIGINT, PRIMARY KEY (case_id, version));
CREATE INDEX mch_records_status ON mch_records (status);
CREATE TABLE mch_followups (
    id BIGSERIAL PRIMARY KEY, case_id TEXT NOT NULL REFERENCES mch_cases(case_id), kind TEXT NOT NULL,
    subject_id BIGINT, site_id TEXT NOT NULL, closes_on TEXT NOT NULL, due TEXT NOT NULL,
    zh TEXT NOT NULL, en TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'open',
    created_ms BIGINT NOT NULL, closed_ms BIGINT, UNIQUE (case_id, kind));
CREATE INDEX mch_followups_open ON mch_followups (status, due);
CREATE TABLE mch_state (name TEXT PRIMARY KEY, value TEXT NOT NULL, updated_ms BIGINT NOT NULL);
CREATE INDEX mch_results_created ON results (created_ms);
CREATE INDEX mch_outbox_created ON outbox (created_ms)
"""


# migration 7, audit hash chain, append-only (both dialects). What it builds:
# Migration 7: the cloud audit log becomes hash-chained and append-only (after migration 3,
# which added ``audit_log.target``).
#
# * ``audit_log`` gains ``chain_seq``, ``prev_hash`` and ``hash``. Writers keep inserting plain
#   rows (no lock, no extra round trip); the sealer (:mod:`cloud.audit.chain`) links every
#   committed row into the chain of :mod:`protocol.audit` within a second or so.
# * ``audit_chain`` (one row) holds the head (last sealed seq and hash) and the retention
#   checkpoint (``anchor_seq``: first retained entry, ``anchor_hash``: that entry's ``prev``).
# * The genesis hash in ``audit_chain`` is :data:`protocol.audit.GENESIS` (64 zeros).
# * Triggers refuse UPDATE, DELETE and TRUNCATE on ``audit_log``, except the sealer setting
#   the chain columns of a row once, and pruning entries before the checkpoint; the
#   checkpoint and head only move forward. Hash chaining detects whoever bypasses the
#   triggers (a superuser).
V7: str = r"""
ALTER TABLE audit_log ADD COLUMN chain_seq BIGINT;
ALTER TABLE audit_log ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_log ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_log_chain ON audit_log (chain_seq);
CREATE INDEX audit_log_unsealed ON audit_log (id) WHERE hash IS NULL;
CREATE TABLE audit_chain (
    id INTEGER PRIMARY KEY, head_seq BIGINT NOT NULL, head_hash TEXT NOT NULL, anchor_seq BIGINT NOT NULL,
    anchor_hash TEXT NOT NULL, sealed_ms BIGINT NOT NULL, pruned_ms BIGINT);
INSERT INTO audit_chain (id, head_seq, head_hash, anchor_seq, anchor_hash, sealed_ms)
    VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000', 1,
            '0000000000000000000000000000000000000000000000000000000000000000', 0);
"""


# migration 7, PostgreSQL only
V7_PG: str = r"""
CREATE FUNCTION mchub_audit_guard() RETURNS trigger AS $$
DECLARE
    v_anchor BIGINT;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        RAISE EXCEPTION 'audit_log is append-only: TRUNCATE refused' USING ERRCODE = '42501';
    END IF;
    IF TG_OP = 'DELETE' THEN
        SELECT anchor_seq INTO v_anchor FROM audit_chain WHERE id = 1;
        IF OLD.chain_seq IS NOT NULL AND OLD.chain_seq < v_anchor THEN
            RETURN OLD;
        END IF;
        RAISE EXCEPTION 'audit_log is append-only: DELETE of entry % refused (only entries before the retention '
            'checkpoint are pruned, by mchub cloud audit prune)', OLD.id USING ERRCODE = '42501';
    END IF;
    IF OLD.hash IS NULL AND OLD.chain_seq IS NULL
       AND (NEW.id, NEW.at_ms, NEW.actor, NEW.action, NEW.outcome, NEW.hub_id, NEW.subject_id, NEW.reason, NEW.detail,
            NEW.target)
           IS NOT DISTINCT FROM (OLD.id, OLD.at_ms, OLD.actor, OLD.action, OLD.outcome, OLD.hub_id,
                                 OLD.subject_id, OLD.reason, OLD.detail, OLD.target) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only: UPDATE of entry % refused', OLD.id USING ERRCODE = '42501';
END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION mchub_audit_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION mchub_audit_guard();
CREATE FUNCTION mchub_audit_chain_guard() RETURNS trigger AS $$
BEGIN
    IF TG_OP <> 'UPDATE' OR NEW.head_seq < OLD.head_seq OR NEW.anchor_seq < OLD.anchor_seq
       OR NEW.anchor_seq > NEW.head_seq + 1 THEN
        RAISE EXCEPTION 'audit_chain only moves forward: % refused', TG_OP USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER audit_chain_forward BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION mchub_audit_chain_guard();
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION mchub_audit_chain_guard();
"""


# migration 7, SQLite only (one statement each)
V7_SQLITE: tuple[str, ...] = (
    r"""CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log WHEN NOT (OLD.hash IS NULL AND OLD.chain_seq IS NULL AND NEW.id IS OLD.id AND NEW.at_ms IS OLD.at_ms AND NEW.actor IS OLD.actor AND NEW.action IS OLD.action AND NEW.outcome IS OLD.outcome AND NEW.hub_id IS OLD.hub_id AND NEW.subject_id IS OLD.subject_id AND NEW.reason IS OLD.reason AND NEW.detail IS OLD.detail AND NEW.target IS OLD.target) BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END""",
    r"""CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log WHEN OLD.chain_seq IS NULL OR OLD.chain_seq >= (SELECT anchor_seq FROM audit_chain WHERE id = 1) BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused (only entries before the retention checkpoint are pruned)'); END""",
    r"""CREATE TRIGGER audit_chain_forward BEFORE UPDATE ON audit_chain WHEN NEW.head_seq < OLD.head_seq OR NEW.anchor_seq < OLD.anchor_seq OR NEW.anchor_seq > NEW.head_seq + 1 BEGIN SELECT RAISE(ABORT, 'audit_chain only moves forward'); END""",
    r"""CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain BEGIN SELECT RAISE(ABORT, 'audit_chain only moves forward'); END""",
)


# migration 8, ingest checks hub and key in the transaction (PostgreSQL only)
V8_PG: str = r"""
CREATE FUNCTION mchub_ingest_checked(p_key TEXT, 
    p_hub TEXT, p_epoch BIGINT, p_first BIGINT, p_last BIGINT, p_now BIGINT, p_actor TEXT, p_epoch_u TEXT,
    r_seq BIGINT[], r_at BIGINT[], r_uid UUID[], r_device TEXT[], r_station TEXT[], r_kind TEXT[],
    r_session TEXT[], r_obs TEXT[], r_dtime TEXT[], r_status TEXT[], r_raw BYTEA[],
    o_seq BIGINT[], o_at BIGINT[], o_session TEXT[], o_station TEXT[], o_source TEXT[], o_weeks INTEGER[],
    o_bi TEXT[], o_nid BYTEA[], o_name BYTEA[], o_sex TEXT[], o_birth TEXT[], o_mrn TEXT[],
    c_seq BIGINT[], c_at BIGINT[], c_session TEXT[], c_reason TEXT[],
    b_seq BIGINT[], b_at BIGINT[], b_uid UUID[], b_uat BIGINT[], b_session TEXT[], b_by TEXT[],
    d_device TEXT[], d_station TEXT[], p_staged BOOLEAN) RETURNS TABLE (res_outcome TEXT, res_mark BIGINT, res_records BIGINT, res_readings BIGINT) AS $$
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
        RETURN QUERY SELECT * FROM mchub_ingest(p_hub, p_epoch, p_first, p_last, p_now, p_actor, p_epoch_u, r_seq, r_at, r_uid, r_device, r_station, r_kind, r_session, r_obs, r_dtime, r_status, r_raw, o_seq, o_at, o_session, o_station, o_source, o_weeks, o_bi, o_nid, o_name, o_sex, o_birth, o_mrn, c_seq, c_at, c_session, c_reason, b_seq, b_at, b_uid, b_uat, b_session, b_by, d_device, d_station, p_staged);
    END IF;
END $$ LANGUAGE plpgsql;
"""


# migration 9, PostgreSQL part: mchub_ingest replaced (change-feed rows done on arrival)
V9_PG: str = V2_PG.replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)
