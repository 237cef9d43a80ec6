"""Storage: the connection and transaction layer (:mod:`cloud.db.engine`, the only one) and
the schema migrations (:mod:`cloud.db.migrations`, the only source of the schema).

The same schema runs on PostgreSQL (production; readings partitioned by month) and on
SQLite (the embedded default for a single-clinic pilot and the demo). Times are stored
as milliseconds since 1970-01-01 UTC (BIGINT), so both dialects compare them alike.
"""
