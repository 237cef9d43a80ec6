"""Sync intake: a hub's sealed batch from arrival to its one stored copy.

``ingest`` runs the checks of docs/protocol.md §3 and answers the hub, ``validate`` checks
every decoded record, ``sync_store`` is the ingest transaction (SQLite; the PostgreSQL
function is :mod:`cloud.db.pg_ingest`), ``importer`` feeds hand-carried export files through
the same path, and ``keystore`` holds the cloud keys that open batches and sign acks.
"""
