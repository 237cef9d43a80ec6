"""Versioned schema migrations, written once in PostgreSQL SQL and translated for SQLite.

``mchub cloud migrate`` (and ``serve`` on start) applies every migration not yet recorded in
``schema_migrations``, each in its own transaction; on PostgreSQL an advisory lock makes
several workers starting at once apply each migration exactly once. A migration is
append-only: never edit one that has shipped, add the next number. Its SQL is text in this
module (or, for the migrations that once read other modules' constants, in
:mod:`cloud.db.shipped`), never a live constant of code that keeps changing.

PostgreSQL only: ``readings`` is partitioned by month of ``at_ms`` (hub receive time);
``mchub_ensure_readings_partition(date)`` creates a month on first use.
"""

from __future__ import annotations

import datetime as dt
import re

from cloud.db import shipped
from cloud.db.engine import Database, Tx
from protocol.ids import now_ms

_V1 = """
CREATE TABLE sites (
    site_id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '', created_ms BIGINT NOT NULL);
CREATE TABLE hubs (
    hub_id TEXT PRIMARY KEY, site_id TEXT NOT NULL REFERENCES sites(site_id),
    name TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT 'active',
    created_ms BIGINT NOT NULL, revoked_ms BIGINT, revoked_reason TEXT,
    online BOOLEAN NOT NULL DEFAULT FALSE, last_seen_ms BIGINT, queue_depth INTEGER,
    version TEXT NOT NULL DEFAULT '', telemetry TEXT);
CREATE TABLE hub_keys (
    id BIGSERIAL PRIMARY KEY, hub_id TEXT NOT NULL REFERENCES hubs(hub_id), key_id TEXT NOT NULL,
    public_key BYTEA NOT NULL, valid_from_ms BIGINT NOT NULL, valid_to_ms BIGINT, revoked_ms BIGINT,
    created_ms BIGINT NOT NULL, UNIQUE (hub_id, key_id));
CREATE TABLE stations (
    hub_id TEXT NOT NULL REFERENCES hubs(hub_id), station_id TEXT NOT NULL, name TEXT NOT NULL DEFAULT '',
    first_seen_ms BIGINT NOT NULL, PRIMARY KEY (hub_id, station_id));
CREATE TABLE devices (
    hub_id TEXT NOT NULL REFERENCES hubs(hub_id), device_id TEXT NOT NULL, station_id TEXT NOT NULL,
    first_seen_ms BIGINT NOT NULL, PRIMARY KEY (hub_id, device_id));
CREATE TABLE sync_state (
    hub_id TEXT NOT NULL REFERENCES hubs(hub_id), epoch BIGINT NOT NULL,
    acked_through BIGINT NOT NULL DEFAULT 0, batches BIGINT NOT NULL DEFAULT 0,
    records BIGINT NOT NULL DEFAULT 0, duplicates BIGINT NOT NULL DEFAULT 0, last_batch_ms BIGINT,
    PRIMARY KEY (hub_id, epoch));
CREATE TABLE subjects (
    id BIGSERIAL PRIMARY KEY, blind_index TEXT UNIQUE, national_id_enc BYTEA, name_enc BYTEA,
    sex TEXT NOT NULL DEFAULT '0', birth_date TEXT, mrn TEXT, merged_into BIGINT REFERENCES subjects(id),
    created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL);
CREATE TABLE subject_merges (
    id BIGSERIAL PRIMARY KEY, survivor_id BIGINT NOT NULL REFERENCES subjects(id),
    merged_id BIGINT NOT NULL REFERENCES subjects(id), actor TEXT NOT NULL, reason TEXT NOT NULL,
    merged_ms BIGINT NOT NULL, undone_ms BIGINT, undone_by TEXT);
CREATE TABLE sessions (
    hub_id TEXT NOT NULL REFERENCES hubs(hub_id), session_id TEXT NOT NULL, epoch BIGINT NOT NULL,
    seq BIGINT NOT NULL, station_id TEXT NOT NULL, subject_id BIGINT REFERENCES subjects(id),
    source TEXT NOT NULL DEFAULT 'idcard', pregnant_weeks INTEGER, opened_ms BIGINT NOT NULL,
    closed_ms BIGINT, close_reason TEXT, PRIMARY KEY (hub_id, session_id));
CREATE INDEX sessions_subject ON sessions (subject_id);
CREATE TABLE readings (
    hub_id TEXT NOT NULL, epoch BIGINT NOT NULL, seq BIGINT NOT NULL, at_ms BIGINT NOT NULL,
    uid UUID NOT NULL, device_id TEXT NOT NULL, station_id TEXT NOT NULL, kind TEXT NOT NULL,
    session_id TEXT, observations TEXT NOT NULL, device_time TEXT, status TEXT NOT NULL,
    raw BYTEA NOT NULL, received_ms BIGINT NOT NULL,
    PRIMARY KEY (hub_id, epoch, seq, at_ms)) PARTITION BY RANGE (at_ms);
CREATE INDEX readings_session ON readings (hub_id, session_id);
CREATE TABLE reading_bindings (
    hub_id TEXT NOT NULL, epoch BIGINT NOT NULL, seq BIGINT NOT NULL, reading_uid UUID NOT NULL,
    session_id TEXT NOT NULL, bound_by TEXT NOT NULL, at_ms BIGINT NOT NULL,
    PRIMARY KEY (hub_id, epoch, seq));
CREATE INDEX reading_bindings_uid ON reading_bindings (reading_uid);
CREATE TABLE results (
    id BIGSERIAL PRIMARY KEY, subject_id BIGINT REFERENCES subjects(id), source TEXT NOT NULL,
    source_key TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, code TEXT NOT NULL, value TEXT NOT NULL,
    unit TEXT NOT NULL DEFAULT '', observed_ms BIGINT, payload TEXT NOT NULL DEFAULT '{}',
    created_ms BIGINT NOT NULL);
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY, topic TEXT NOT NULL, idempotency_key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL, last_error TEXT, created_ms BIGINT NOT NULL, updated_ms BIGINT NOT NULL);
CREATE INDEX outbox_due ON outbox (topic, next_attempt_ms) WHERE status = 'pending';
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY, at_ms BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
    outcome TEXT NOT NULL, hub_id TEXT, subject_id BIGINT, reason TEXT, detail TEXT NOT NULL DEFAULT '{}');
CREATE INDEX audit_log_hub ON audit_log (hub_id, at_ms);
CREATE TABLE roles (name TEXT PRIMARY KEY, description TEXT NOT NULL DEFAULT '');
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY, username TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL DEFAULT '', totp_secret_enc BYTEA, active BOOLEAN NOT NULL DEFAULT TRUE,
    created_ms BIGINT NOT NULL);
CREATE TABLE user_roles (
    user_id BIGINT NOT NULL REFERENCES users(id), role TEXT NOT NULL REFERENCES roles(name),
    PRIMARY KEY (user_id, role));
INSERT INTO roles (name, description) VALUES
    ('admin', 'sites, hubs, keys, users'), ('integration', 'queues, dead letters, replay'),
    ('clinic_staff', 'own site sessions and readings'), ('auditor', 'read the audit log');
"""

_V1_PG_ONLY = """
CREATE FUNCTION mchub_ensure_readings_partition(month_start DATE) RETURNS void AS $$
DECLARE
    part TEXT := 'readings_' || to_char(month_start, 'YYYY_MM');
    lo BIGINT := (extract(epoch FROM month_start::timestamp) * 1000)::bigint;
    hi BIGINT := (extract(epoch FROM (month_start + interval '1 month')::timestamp) * 1000)::bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(7311);
    IF to_regclass(part) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%s) TO (%s)', part, lo, hi);
    END IF;
END $$ LANGUAGE plpgsql;
"""

_V3 = """
ALTER TABLE users ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN last_totp_step BIGINT;
ALTER TABLE users ADD COLUMN password_changed_ms BIGINT;
ALTER TABLE users ADD COLUMN last_login_ms BIGINT;
CREATE TABLE admin_sessions (
    token_digest TEXT PRIMARY KEY, user_id BIGINT NOT NULL REFERENCES users(id),
    created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL, source TEXT NOT NULL DEFAULT '', ended_ms BIGINT);
CREATE INDEX admin_sessions_user ON admin_sessions (user_id);
ALTER TABLE audit_log ADD COLUMN target TEXT;
CREATE INDEX audit_log_target ON audit_log (target, id);
ALTER TABLE hubs ADD COLUMN serial TEXT NOT NULL DEFAULT '';
ALTER TABLE hubs ADD COLUMN mqtt_password_hash TEXT;
ALTER TABLE hubs ADD COLUMN revoked_by TEXT;
ALTER TABLE hubs ADD COLUMN enroll_token TEXT;
ALTER TABLE hub_keys ADD COLUMN cert_pem TEXT NOT NULL DEFAULT '';
ALTER TABLE hub_keys ADD COLUMN cert_serial TEXT NOT NULL DEFAULT '';
ALTER TABLE hub_keys ADD COLUMN not_after_ms BIGINT;
CREATE TABLE enroll_tokens (
    token_id TEXT PRIMARY KEY, digest BYTEA NOT NULL, site_id TEXT NOT NULL REFERENCES sites(site_id),
    hub_serial TEXT, created_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL, created_by TEXT NOT NULL DEFAULT '',
    used_ms BIGINT, used_by_hub TEXT, used_key TEXT);
CREATE INDEX enroll_tokens_site ON enroll_tokens (site_id, created_ms);
CREATE TABLE device_inventory (
    hub_id TEXT NOT NULL, device_id TEXT NOT NULL, station INTEGER NOT NULL, kind TEXT NOT NULL,
    transport TEXT NOT NULL, address TEXT NOT NULL, port INTEGER, dialect TEXT,
    options TEXT NOT NULL DEFAULT '{}', label TEXT NOT NULL DEFAULT '', PRIMARY KEY (hub_id, device_id));
CREATE TABLE hub_config_versions (hub_id TEXT PRIMARY KEY, version BIGINT NOT NULL)
"""

_V6_WEB = """
CREATE TABLE web_sessions (
    id_hash TEXT PRIMARY KEY, user_name TEXT NOT NULL, role TEXT NOT NULL, csrf TEXT NOT NULL,
    created_ms BIGINT NOT NULL, last_seen_ms BIGINT NOT NULL, data TEXT NOT NULL DEFAULT '{}');
CREATE INDEX web_sessions_seen ON web_sessions (last_seen_ms);
CREATE TABLE web_login_failures (key TEXT NOT NULL, at_ms BIGINT NOT NULL);
CREATE INDEX web_login_failures_key ON web_login_failures (key, at_ms);
CREATE TABLE web_login_locks (key TEXT PRIMARY KEY, until_ms BIGINT NOT NULL);
CREATE TABLE dashboard_samples (
    minute BIGINT NOT NULL, metric TEXT NOT NULL, value BIGINT NOT NULL, PRIMARY KEY (minute, metric));
CREATE INDEX outbox_created ON outbox (created_ms);
CREATE INDEX outbox_open ON outbox (topic, status) WHERE status <> 'done';
CREATE INDEX audit_log_action ON audit_log (action, at_ms);
CREATE INDEX hl7_inbound_control ON hl7_inbound (control_id);
"""

#: migration 9: change-feed rows (``visit.closed``, ``visit.updated``) are events, not waiting
#: work: they are stored as ``done`` (cloud.outbox.record_event), and those already queued retire
_V9_EVENTS = """
UPDATE outbox SET status = 'done' WHERE topic IN ('visit.closed', 'visit.updated') AND status = 'pending';
"""

#: migration 10: records refused one by one (cloud/intake/validate.py) while the rest of their batch was
#: stored; the ack names them, the dashboard lists them per hub (docs/protocol.md §3.1)
_V10_REFUSED = """
CREATE TABLE refused_records (
    hub_id TEXT NOT NULL REFERENCES hubs(hub_id), epoch BIGINT NOT NULL, seq BIGINT NOT NULL,
    record_type TEXT NOT NULL, reason TEXT NOT NULL, message TEXT NOT NULL, at_ms BIGINT NOT NULL,
    received_ms BIGINT NOT NULL, PRIMARY KEY (hub_id, epoch, seq));
CREATE INDEX refused_records_received ON refused_records (received_ms);
"""

#: migration 12 (issue 17 findings 3 and 10): a session carries its user's ``session_version``,
#: which a role change, password reset, disable or logout bumps (every request re-checks it);
#: a login lock remembers how many times it was set in a row, so the next one doubles
_V12_SESSIONS = """
ALTER TABLE users ADD COLUMN session_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE web_sessions ADD COLUMN user_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE admin_sessions ADD COLUMN user_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE web_login_locks ADD COLUMN locks INTEGER NOT NULL DEFAULT 0
"""

#: migration 14: credentials of the systems allowed to send DICOM by STOW-RS (issue 16 §1); the
#: token is kept as its SHA-256 digest only, a name may be reused once its old credential is revoked
_V14_DICOM_SENDERS = """
CREATE TABLE dicom_senders (
    id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, token_digest TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL, created_by TEXT NOT NULL, revoked_ms BIGINT, revoked_by TEXT,
    note TEXT NOT NULL DEFAULT '');
CREATE UNIQUE INDEX dicom_senders_active_name ON dicom_senders (name) WHERE revoked_ms IS NULL;
"""

#: migration 13: HL7 duplicates by content, not by control id alone (issue 16 finding 2). ``control_key``
#: is sender + MSH-10 of an accepted message; ``dedup_key`` becomes control_key + content digest.
#: Older rows keep dedup_key = control_key until the HL7 store rewrites them at start
#: (cloud.mllp.db_store.Hl7Store.upgrade_keys: sealed messages need the at-rest key).
_V13_HL7_REUSE = """
ALTER TABLE hl7_inbound ADD COLUMN control_key TEXT;
ALTER TABLE hl7_inbound ADD COLUMN control_id_reused BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE hl7_inbound SET control_key = dedup_key WHERE dedup_key IS NOT NULL;
CREATE INDEX hl7_inbound_control_key ON hl7_inbound (control_key);
"""

#: migration 15 (issue 19, fleetpush): what a hub reports about its configuration push —
#: the version its drivers run and the devices configured on it but not connected
_V15_PUSH_STATE = """
ALTER TABLE hubs ADD COLUMN config_applied INTEGER;
ALTER TABLE hubs ADD COLUMN devices_down TEXT;
"""

#: migration 16 (issue 20, message browser): the ACK each HL7 message was answered with (sealed like
#: the message, at most cloud.mllp.store.ACK_STORED_MAX bytes); the patient a processed message named,
#: as keyed HMACs only (national ID blind index, name index: cloud.records.crypto_at_rest); indexes for the
#: browser's filters (state, patient, name; outbox by topic; DICOM by arrival), newest first by id
_V16_MESSAGE_BROWSER = """
ALTER TABLE hl7_inbound ADD COLUMN ack BYTEA;
ALTER TABLE hl7_inbound ADD COLUMN patient_index TEXT;
ALTER TABLE hl7_inbound ADD COLUMN name_index TEXT;
CREATE INDEX hl7_inbound_status_id ON hl7_inbound (status, id);
CREATE INDEX hl7_inbound_failed ON hl7_inbound (id) WHERE process_error IS NOT NULL;
CREATE INDEX hl7_inbound_patient ON hl7_inbound (patient_index) WHERE patient_index IS NOT NULL;
CREATE INDEX hl7_inbound_name ON hl7_inbound (name_index) WHERE name_index IS NOT NULL;
CREATE INDEX outbox_topic_id ON outbox (topic, id);
CREATE INDEX dicom_instances_received ON dicom_instances (received_ms);
"""

#: migration 17 (issue 20, work list): who a waiting result names — her sealed name, sex and birth date
#: (from the ID number when the message had one, else PID-7/PID-8) — so staff see whom it is about
#: and the work list can offer the subjects born that day (index) as candidates
_V17_WORKLIST = """
ALTER TABLE unmatched ADD COLUMN name_enc BYTEA;
ALTER TABLE unmatched ADD COLUMN sex TEXT NOT NULL DEFAULT '0';
ALTER TABLE unmatched ADD COLUMN birth_date TEXT;
CREATE INDEX subjects_birth_date ON subjects (birth_date);
"""

#: migration 18 (issue 20, admin console): a new one-time-code secret waits for its first code;
#: station names unique per hub
_V18_ADMIN_CONSOLE = """
ALTER TABLE users ADD COLUMN totp_pending_enc BYTEA;
CREATE UNIQUE INDEX stations_hub_name ON stations (hub_id, name) WHERE name <> '';
"""

#: (version, name, SQL for both dialects, PostgreSQL-only SQL)
MIGRATIONS: list[tuple[int, str, str, str]] = [
    (1, "initial schema", _V1, _V1_PG_ONLY),
    (2, "ingest function", "", shipped.V2_PG),
    (3, "admin users, sessions and provisioning", _V3, ""),
    (4, "hospital integration", shipped.V4, shipped.V4_PG),
    (5, "mch cases and upload records", shipped.V5, ""),
    (6, "web sessions, login throttle, dashboard samples", _V6_WEB, ""),
    (7, "audit hash chain, append-only", shipped.V7, shipped.V7_PG),
    (8, "ingest checks hub and key in the transaction", "", shipped.V8_PG),
    (9, "change-feed outbox rows are done on arrival", _V9_EVENTS, shipped.V9_PG),
    (10, "records refused one by one", _V10_REFUSED, ""),
    (12, "session versions, escalating login locks", _V12_SESSIONS, ""),
    (13, "hl7 duplicates by content, control id reuse marked", _V13_HL7_REUSE, ""),
    (14, "dicom sender credentials", _V14_DICOM_SENDERS, ""),
    (15, "hub configuration push state", _V15_PUSH_STATE, ""),
    (16, "message browser: stored ACKs, patient indexes of HL7 messages", _V16_MESSAGE_BROWSER, ""),
    (17, "unmatched work list: patient context, subjects by birth date", _V17_WORKLIST, ""),
    (18, "one-time-code enrolment waits for a first code; station names unique per hub", _V18_ADMIN_CONSOLE, ""),
]
#: SQLite-only SQL of a migration, run after its common SQL: one statement (e.g. a trigger) or a tuple of them
SQLITE_ONLY: dict[int, str | tuple[str, ...]] = {4: shipped.V4_SQLITE, 7: shipped.V7_SQLITE}

_SQLITE_SUBS = [
    (r"BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT"),
    (r"\bBYTEA\b", "BLOB"), (r"\bUUID\b", "TEXT"), (r"\bBOOLEAN\b", "INTEGER"),
    (r"DEFAULT FALSE", "DEFAULT 0"), (r"DEFAULT TRUE", "DEFAULT 1"),
    (r"\) PARTITION BY RANGE \(at_ms\);", ");"),
]


def sqlite_sql(sql: str) -> str:
    """Translate this module's PostgreSQL DDL to SQLite."""
    for pattern, repl in _SQLITE_SUBS:
        sql = re.sub(pattern, repl, sql)
    return sql


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";\n") if s.strip()]


async def _applied(tx: Tx) -> set[int]:
    await tx.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                     "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms BIGINT NOT NULL)")
    return {r["version"] for r in await tx.fetch("SELECT version FROM schema_migrations")}


async def migrate(db: Database) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    done: list[str] = []
    for version, name, common, pg_only in MIGRATIONS:
        async with db.transaction() as tx:
            if tx.dialect == "postgres":
                await tx.execute("SELECT pg_advisory_xact_lock(7310)")
            if version in await _applied(tx):
                continue
            if tx.dialect == "postgres":
                await tx.execute(common + pg_only)
            else:
                for stmt in _statements(sqlite_sql(common)):
                    await tx.execute(stmt)
                extra = SQLITE_ONLY.get(version, ())
                for stmt in (extra,) if isinstance(extra, str) else extra:
                    await tx.execute(stmt)
            await tx.execute("INSERT INTO schema_migrations (version, name, applied_ms) VALUES ($1, $2, $3)",
                             version, name, now_ms())
            done.append(f"{version:04d} {name}")
    return done


def month_start(at_ms: int) -> dt.date:
    """First day (UTC) of the month holding ``at_ms``."""
    d = dt.datetime.fromtimestamp(at_ms / 1000, tz=dt.UTC)
    return dt.date(d.year, d.month, 1)


class PartitionCache:
    """Remembers which monthly partitions of ``readings`` exist (PostgreSQL)."""

    def __init__(self) -> None:
        self._known: set[dt.date] = set()

    async def ensure(self, db: Database, at_values: list[int]) -> None:
        """Create missing month partitions for these reading times (outside the ingest transaction)."""
        if db.dialect != "postgres" or not at_values:
            return
        lo, hi = month_start(min(at_values)), month_start(max(at_values))
        if lo == hi and lo in self._known:  # the usual case: one batch, one known month
            return
        months = {month_start(a) for a in at_values} - self._known
        for month in sorted(months):
            async with db.transaction() as tx:
                await tx.execute("SELECT mchub_ensure_readings_partition($1)", month)
            self._known.add(month)
