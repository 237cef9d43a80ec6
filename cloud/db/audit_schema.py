"""Migration 7: the cloud audit log becomes hash-chained and append-only (after migration 3,
which added ``audit_log.target``).

* ``audit_log`` gains ``chain_seq``, ``prev_hash`` and ``hash``. Writers keep inserting plain
  rows (no lock, no extra round trip); the sealer (:mod:`cloud.audit_chain`) links every
  committed row into the chain of :mod:`protocol.audit` within a second or so.
* ``audit_chain`` (one row) holds the head (last sealed seq and hash) and the retention
  checkpoint (``anchor_seq``: first retained entry, ``anchor_hash``: that entry's ``prev``).
* The genesis hash in ``audit_chain`` is :data:`protocol.audit.GENESIS` (64 zeros).
* Triggers refuse UPDATE, DELETE and TRUNCATE on ``audit_log``, except the sealer setting
  the chain columns of a row once, and pruning entries before the checkpoint; the
  checkpoint and head only move forward. Hash chaining detects whoever bypasses the
  triggers (a superuser).
"""

from __future__ import annotations

V7 = """
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

V7_PG_ONLY = """
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

#: SQLite: one statement per trigger
V7_SQLITE_ONLY = (
    "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log WHEN NOT (OLD.hash IS NULL AND "
    "OLD.chain_seq IS NULL AND NEW.id IS OLD.id AND NEW.at_ms IS OLD.at_ms AND NEW.actor IS OLD.actor AND "
    "NEW.action IS OLD.action AND NEW.outcome IS OLD.outcome AND NEW.hub_id IS OLD.hub_id AND "
    "NEW.subject_id IS OLD.subject_id AND NEW.reason IS OLD.reason AND NEW.detail IS OLD.detail AND "
    "NEW.target IS OLD.target) "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END",
    "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log WHEN OLD.chain_seq IS NULL OR OLD.chain_seq >= "
    "(SELECT anchor_seq FROM audit_chain WHERE id = 1) BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: "
    "DELETE refused (only entries before the retention checkpoint are pruned)'); END",
    "CREATE TRIGGER audit_chain_forward BEFORE UPDATE ON audit_chain WHEN NEW.head_seq < OLD.head_seq OR "
    "NEW.anchor_seq < OLD.anchor_seq OR NEW.anchor_seq > NEW.head_seq + 1 BEGIN SELECT RAISE(ABORT, "
    "'audit_chain only moves forward'); END",
    "CREATE TRIGGER audit_chain_no_delete BEFORE DELETE ON audit_chain BEGIN SELECT RAISE(ABORT, "
    "'audit_chain only moves forward'); END",
)
