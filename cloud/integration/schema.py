"""Migration 4 (hospital integration): written once in PostgreSQL SQL, translated for SQLite.

* ``hl7_inbound`` — every MLLP frame as received (raw bytes, sealed with the at-rest key),
  its ACK code and reason; ``dedup_key`` (sender + MSH-10 of accepted messages) detects
  resends; ``processed_ms`` / ``process_error`` record the processing step.
* ``subject_identifiers`` — identifiers of a subject learned from the HIS (MRN per assigning
  authority); the national ID stays in ``subjects`` (sealed + blind index).
* ``unmatched`` — the work list of results and studies whose patient is not known yet.
* ``dicom_instances`` — the index of stored DICOM instances.
* ``results.origin`` — what produced a result row (``hl7:<inbound uid>``), so a whole
  message's results are re-attached at once when its patient becomes known.
* ``integration_switches`` + a trigger on ``outbox``: when ingest enqueues ``visit.closed``
  (inside the ingest transaction) and the HIS feed is enabled, the same transaction also
  enqueues ``his.vitals`` with the same payload — no change to the ingest code paths.
"""

from __future__ import annotations

COMMON = """
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

PG_ONLY = """
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

#: one statement (not split): the same trigger on SQLite
SQLITE_ONLY = """
CREATE TRIGGER outbox_his_vitals AFTER INSERT ON outbox FOR EACH ROW
WHEN NEW.topic = 'visit.closed' AND EXISTS (SELECT 1 FROM integration_switches WHERE name = 'his.vitals' AND enabled)
BEGIN
    INSERT OR IGNORE INTO outbox (topic, idempotency_key, payload, next_attempt_ms, created_ms, updated_ms)
        VALUES ('his.vitals', 'his.vitals/' || substr(NEW.idempotency_key, 14), NEW.payload,
                NEW.next_attempt_ms, NEW.created_ms, NEW.updated_ms);
END
"""
