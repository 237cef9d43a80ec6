"""Migration 5: MCH cases, their versioned upload records, follow-up tasks, job state.

    mch_cases      one row per case (cervical, breast, growth, prenatal): its subject, site,
                   state and what it still misses; ``overrides`` holds staff corrections
    mch_records    every version of a case's record: the validated payload (our form), the
                   field errors, and whether it is held, queued, accepted, refused or superseded
    mch_followups  tasks opened by positive/abnormal results, closed by the next result
    mch_state      small named values of the MCH jobs (assembler watermark, backfill cursors)

Plus two indexes on tables of others that the assembler's change feed reads by time.
"""

from __future__ import annotations

V5 = """
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
