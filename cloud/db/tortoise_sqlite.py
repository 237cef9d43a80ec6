"""tortoise's SQLite client for a database that other connections write at the same time.

The cloud's own connection (:mod:`cloud.db.engine`) and tortoise's (registry, users,
fleet) share one SQLite file. tortoise's stock client opens transactions with a deferred
``BEGIN`` and sets no busy timeout: a transaction that reads and then writes while the
other connection has committed fails at once with "database is locked" (a WAL snapshot
cannot be upgraded, and no busy handler runs). This client takes the write lock up front
(``BEGIN IMMEDIATE``) and waits up to ``busy_timeout`` ms for it, like the engine does.
A wait that still times out surfaces as tortoise's ``OperationalError``; the app answers
it 503 with Retry-After (:func:`cloud.app.build_app`).

Named as the tortoise ``engine`` by :func:`cloud.db.orm.start_orm` for ``sqlite:///`` URLs.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from tortoise.backends.base.client import TransactionContext
from tortoise.backends.sqlite.client import SqliteClient, SqliteTransactionContext, SqliteTransactionWrapper
from tortoise.connection import get_connections
from tortoise.exceptions import OperationalError

BUSY_TIMEOUT_MS = 30_000


class _ImmediateTransaction(SqliteTransactionWrapper):
    async def begin(self) -> None:
        try:
            await self._connection.commit()
            await self._connection.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # busy past the timeout: 503 upstream
            raise OperationalError(exc) from exc


class _Context(SqliteTransactionContext):
    """tortoise's context, but a failed ``begin`` (busy past the timeout) releases the
    client's transaction lock and connection binding; the stock one keeps the lock, so the
    next transaction of the process would wait for it forever."""

    async def __aenter__(self) -> Any:
        await self._trxlock.acquire()
        try:
            await self.ensure_connection()
            self.token = get_connections().set(self.connection_name, self.connection)
            try:
                await self.connection.begin()
            except BaseException:
                get_connections().reset(self.token)
                raise
        except BaseException:
            self._trxlock.release()
            raise
        return self.connection


class ImmediateSqliteClient(SqliteClient):
    """:class:`SqliteClient` with ``BEGIN IMMEDIATE`` transactions and a busy timeout."""

    def __init__(self, file_path: str, **kwargs: Any) -> None:
        kwargs.setdefault("busy_timeout", BUSY_TIMEOUT_MS)
        super().__init__(file_path, **kwargs)

    def _in_transaction(self) -> TransactionContext:
        return _Context(_ImmediateTransaction(self), self._lock)


client_class = ImmediateSqliteClient
