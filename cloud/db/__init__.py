"""Storage: the connection layer (:mod:`cloud.db.engine`), schema migrations
(:mod:`cloud.db.migrations`) and the tortoise-orm models (:mod:`cloud.db.models`).

The same schema runs on PostgreSQL (production; readings partitioned by month) and on
SQLite (the embedded default for a single-clinic pilot and the demo). Times are stored
as milliseconds since 1970-01-01 UTC (BIGINT), so both dialects compare them alike.
"""
