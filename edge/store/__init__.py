"""The hub's durable store: SQLite (WAL, synchronous=FULL) through one writer thread.

    schema   opening, quick_check, quarantine, migrations
    ledger   inputs -> seq-numbered records, in one transaction per group
    writer   group commit, back-pressure, disk guard
    reader   queries for the sync client, status API and CLI
"""
