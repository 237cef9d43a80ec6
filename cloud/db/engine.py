"""A small async connection layer over asyncpg (PostgreSQL) and aiosqlite (SQLite).

SQL is written once in PostgreSQL style with ``$1, $2, ...`` placeholders used in order;
on SQLite they become ``?``. Rows are mappings (``row["column"]``) on both.

    db = await Database.connect("sqlite:///cloud.db")
    async with db.transaction() as tx:
        row = await tx.fetchrow("SELECT acked_through FROM sync_state WHERE hub_id = $1", hub)

No ``sqlite3`` or ``asyncpg`` error leaves this module: connection failures, a busy
database and transient conflicts are raised as :class:`cloud.errors.DatabaseUnavailable`
(the HTTP layer answers 503 with Retry-After); a broken schema rule as the same
:class:`cloud.errors.IntegrityError` subclass on both dialects (``UniqueViolation``,
``ForeignKeyViolation``, ``NotNullViolation``, ``CheckViolation``, ``RuleViolation`` for a
trigger's refusal); anything else as ``DatabaseError`` (:func:`pg_error`, :func:`sqlite_error`).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiosqlite
import asyncpg

from cloud.errors import (
    CheckViolation,
    DatabaseError,
    DatabaseUnavailable,
    ForeignKeyViolation,
    IntegrityError,
    NotNullViolation,
    RuleViolation,
    UniqueViolation,
)

_PLACEHOLDER = re.compile(r"\$\d+")
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError, asyncpg.InterfaceError, asyncpg.AdminShutdownError,
    asyncpg.ConnectionDoesNotExistError,
    # transient conflicts: the client retries the same request (503 with Retry-After)
    asyncpg.DeadlockDetectedError, asyncpg.SerializationError,
)

#: the same project type for the same broken rule on both dialects
_PG_INTEGRITY: tuple[tuple[type[asyncpg.PostgresError], type[IntegrityError]], ...] = (
    (asyncpg.UniqueViolationError, UniqueViolation), (asyncpg.ForeignKeyViolationError, ForeignKeyViolation),
    (asyncpg.NotNullViolationError, NotNullViolation), (asyncpg.CheckViolationError, CheckViolation),
    # a trigger's RAISE: plain (P0001), or with ERRCODE 42501 as the audit tables' triggers do (shipped.V7_PG)
    (asyncpg.RaiseError, RuleViolation), (asyncpg.InsufficientPrivilegeError, RuleViolation),
    (asyncpg.IntegrityConstraintViolationError, IntegrityError),
)
_SQLITE_INTEGRITY: dict[str, type[IntegrityError]] = {
    "SQLITE_CONSTRAINT_UNIQUE": UniqueViolation, "SQLITE_CONSTRAINT_PRIMARYKEY": UniqueViolation,
    "SQLITE_CONSTRAINT_FOREIGNKEY": ForeignKeyViolation, "SQLITE_CONSTRAINT_NOTNULL": NotNullViolation,
    "SQLITE_CONSTRAINT_CHECK": CheckViolation, "SQLITE_CONSTRAINT_TRIGGER": RuleViolation,
}

Row = Any  #: asyncpg.Record or sqlite3.Row: both index by column name


def epoch_to_db(epoch: int) -> int:
    """Store the unsigned 64-bit epoch in a signed BIGINT (two's complement)."""
    return epoch - (1 << 64) if epoch >= 1 << 63 else epoch


def epoch_from_db(value: int) -> int:
    """Inverse of :func:`epoch_to_db`."""
    return value + (1 << 64) if value < 0 else value


class Tx:
    """One open transaction. ``dialect`` is ``"postgres"`` or ``"sqlite"``."""

    dialect: str

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """All rows of a query."""
        raise DatabaseError("abstract")

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """The first row, or None."""
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        """The first column of the first row, or None."""
        row = await self.fetchrow(sql, *args)
        return None if row is None else row[0]

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; returns the number of rows it touched."""
        raise DatabaseError("abstract")

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run a statement once per parameter row."""
        raise DatabaseError("abstract")

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` into ``table`` (``columns`` in order), the bulk way: ``COPY`` on PostgreSQL
        (no ``ON CONFLICT``: the caller knows none of them can conflict), one INSERT per row on SQLite."""
        if rows:
            marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
            sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608 - names are the caller's constants; values are parameters
            await self.executemany(sql, rows)

    @property
    def raw(self) -> Any:
        """The driver connection (asyncpg.Connection on PostgreSQL) for bulk paths."""
        raise DatabaseError("abstract")


class _PgTx(Tx):
    dialect = "postgres"

    def __init__(self, con: asyncpg.Connection) -> None:
        self._con = con

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._con.fetch(sql, *args))

    async def execute(self, sql: str, *args: Any) -> int:
        status = await self._con.execute(sql, *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._con.executemany(sql, list(rows))

    async def copy_rows(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        if rows:  # binary COPY: no per-row statement, no speculative insertion (a third less database CPU)
            await self._con.copy_records_to_table(table, records=rows, columns=list(columns))

    @property
    def raw(self) -> asyncpg.Connection:
        return self._con


class _SqliteTx(Tx):
    dialect = "sqlite"

    def __init__(self, con: aiosqlite.Connection) -> None:
        self._con = con

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._con.execute(_PLACEHOLDER.sub("?", sql), args) as cur:
            return list(await cur.fetchall())

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._con.execute(_PLACEHOLDER.sub("?", sql), args) as cur:
            return int(cur.rowcount)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._con.executemany(_PLACEHOLDER.sub("?", sql), [tuple(r) for r in rows])

    @property
    def raw(self) -> aiosqlite.Connection:
        return self._con


class Database:
    """A pool of connections to one database; use :meth:`connect`."""

    dialect: str
    url: str

    @staticmethod
    async def connect(url: str, pool_size: int = 10) -> Database:
        """Open a PostgreSQL pool or an SQLite file (WAL mode)."""
        if url.startswith("sqlite:///"):
            return await _SqliteDatabase.open(url.removeprefix("sqlite:///"), url)
        if url.startswith(("postgresql://", "postgres://")):
            return await _PgDatabase.open(url, pool_size)
        raise DatabaseError(f"unsupported database URL scheme in {url.split(':')[0]!r}")

    def transaction(self) -> Any:
        """``async with db.transaction() as tx``: commit on success, roll back on error."""
        raise DatabaseError("abstract")

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """One read-only statement outside any transaction (one round trip on PostgreSQL)."""
        async with self.transaction() as tx:
            return await tx.fetchrow(sql, *args)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """One statement outside any explicit transaction: it commits by itself (one round trip on PostgreSQL)."""
        async with self.transaction() as tx:
            return await tx.fetch(sql, *args)

    async def close(self) -> None:
        """Close every connection."""


async def _keep_session(con: asyncpg.Connection) -> None:
    """Pool reset: nothing to undo. asyncpg's default sends ``SELECT pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL`` on every release, one more round trip per ingest call
    (a third of a small batch's cost). mchub code keeps no session state on pooled
    connections: no SET, LISTEN, cursors or session advisory locks (transaction-scoped
    ``pg_advisory_xact_lock`` only); asyncpg still rolls back an open transaction itself."""


class _PgDatabase(Database):
    dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self.url = url

    @classmethod
    async def open(cls, url: str, pool_size: int) -> _PgDatabase:
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=pool_size, timeout=10, reset=_keep_session,
                                             server_settings={"application_name": "mchub-cloud"})
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise pg_error(exc) from exc
        return cls(pool, url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        try:
            async with self._pool.acquire(timeout=10) as con, con.transaction():
                yield _PgTx(con)
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise pg_error(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        try:
            return await self._pool.fetchrow(sql, *args, timeout=30)
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise pg_error(exc) from exc

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            return list(await self._pool.fetch(sql, *args, timeout=30))
        except (*_UNAVAILABLE, asyncpg.PostgresError) as exc:
            raise pg_error(exc) from exc

    async def close(self) -> None:
        await self._pool.close()


def pg_error(exc: BaseException) -> DatabaseError:
    """A PostgreSQL (or connection) error as ours: see the module's docstring."""
    if isinstance(exc, _UNAVAILABLE):
        return DatabaseUnavailable(f"database unavailable: {exc}")
    for theirs, ours in _PG_INTEGRITY:
        if isinstance(exc, theirs):
            return ours(f"database refused the statement: {exc}")
    return DatabaseError(f"database error: {exc}")


def sqlite_error(exc: sqlite3.Error) -> DatabaseError:
    """An SQLite error as ours: a busy or locked database is :class:`DatabaseUnavailable`
    (answered 503 with Retry-After), a broken rule the same ``IntegrityError`` subclass as on
    PostgreSQL, anything else :class:`DatabaseError`."""
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return DatabaseUnavailable(f"SQLite database is busy: {text}")
    if isinstance(exc, sqlite3.IntegrityError):
        ours = _SQLITE_INTEGRITY.get(getattr(exc, "sqlite_errorname", ""), IntegrityError)
        return ours(f"database refused the statement: {text}")
    return DatabaseError(f"SQLite error: {text}")


BUSY_TIMEOUT_MS = 30_000
"""How long an SQLite transaction waits for the write lock that another process (``mchub
cloud`` maintenance, a second worker) holds before it is :class:`DatabaseUnavailable`."""


class _SqliteDatabase(Database):
    """One connection; transactions are serialised (BEGIN IMMEDIATE) by an asyncio lock."""

    dialect = "sqlite"

    def __init__(self, con: aiosqlite.Connection, url: str) -> None:
        self._con = con
        self._lock = asyncio.Lock()
        self.url = url

    @classmethod
    async def open(cls, path: str, url: str) -> _SqliteDatabase:
        try:
            con = await aiosqlite.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise DatabaseUnavailable(f"cannot open SQLite database {path}: {exc}") from exc
        con.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", f"busy_timeout={BUSY_TIMEOUT_MS}"):
            await con.execute(f"PRAGMA {pragma}")
        return cls(con, url)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._lock:
            try:
                await self._con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise DatabaseUnavailable(f"SQLite database is busy: {exc}") from exc
            try:
                yield _SqliteTx(self._con)
            except sqlite3.Error as exc:
                await self._con.execute("ROLLBACK")
                raise sqlite_error(exc) from exc
            except BaseException:
                await self._con.execute("ROLLBACK")
                raise
            try:
                await self._con.execute("COMMIT")
            except sqlite3.Error as exc:  # e.g. a deferred foreign key: the same type as on PostgreSQL
                if self._con.in_transaction:  # a failed COMMIT leaves the transaction open
                    await self._con.execute("ROLLBACK")
                raise sqlite_error(exc) from exc

    async def close(self) -> None:
        await self._con.close()
