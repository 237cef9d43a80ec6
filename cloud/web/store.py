"""Web sessions and login throttling in the cloud database, shared by every worker.

The cloud runs several uvicorn workers behind a load balancer, so a session created by
one must be seen by the next request on another: :class:`DbSessionStore` implements
:class:`webui.sessions.SessionStore` over the ``web_sessions`` table (migration 6). The
table holds a SHA-256 of the session id, never the id itself, so a copy of the database
does not let anyone take over a session. :class:`DbLoginThrottle` is the database twin of
:class:`webui.security.LoginThrottle`: failures counted across workers, so five wrong
passwords lock a user name wherever they were typed, and repeated locks double (same rule).

The database is bound on the first request (:meth:`bind`), because the worker opens it in
the app's lifespan, after the routes were built.
"""

from __future__ import annotations

import hashlib

import msgspec

from cloud.db.engine import Database
from cloud.errors import CloudError
from cloud.users import sessions as user_sessions
from protocol.ids import now_ms
from webui.security import ANONYMOUS, lock_duration
from webui.sessions import Session


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class _Bound:
    db: Database | None = None

    def bind(self, db: Database) -> None:
        """Use ``db`` from now on."""
        self.db = db

    def _db(self) -> Database:
        if self.db is None:
            raise CloudError("web store used before the database was bound")
        return self.db


class DbSessionStore(_Bound):
    """Sessions in ``web_sessions``; sessions idle past ``forget_after_s`` are purged on creation.

    A signed-in session stops working as soon as its account is disabled (checked on every read),
    and, through :meth:`user_version` (handed to :class:`webui.security.WebSecurity`), as soon
    as the user's session version moves on (role change, password reset, disable, logout).
    """

    def __init__(self, forget_after_s: float = 86_400.0) -> None:
        self.forget_after_ms = int(forget_after_s * 1000)

    async def get(self, session_id: str) -> Session | None:
        """The session, or None."""
        row = await self._db().fetchrow(
            "SELECT w.user_name, w.role, w.csrf, w.created_ms, w.last_seen_ms, w.data, w.user_version, u.active "
            "FROM web_sessions w "
            "LEFT JOIN users u ON u.username = w.user_name WHERE w.id_hash = $1", _hash(session_id))
        if row is None or (row["role"] != ANONYMOUS and not row["active"]):
            return None  # unknown, or the account was disabled or removed since sign-in
        return Session(session_id, row["user_name"], row["role"], row["csrf"], row["created_ms"] / 1000,
                       row["last_seen_ms"] / 1000, msgspec.json.decode(row["data"], type=dict[str, str]),
                       version=int(row["user_version"]))

    async def user_version(self, user_name: str) -> int | None:
        """The user's current session version (None: unknown or disabled account)."""
        return await user_sessions.session_version(self._db(), user_name)

    async def put(self, session: Session) -> None:
        """Create or update (one statement)."""
        async with self._db().transaction() as tx:
            n = await tx.execute("UPDATE web_sessions SET last_seen_ms = $1, data = $2 WHERE id_hash = $3",
                                 int(session.last_seen * 1000), msgspec.json.encode(session.data).decode(),
                                 _hash(session.id))
            if n:
                return
            await tx.execute("DELETE FROM web_sessions WHERE last_seen_ms < $1", now_ms() - self.forget_after_ms)
            await tx.execute(
                "INSERT INTO web_sessions (id_hash, user_name, role, csrf, created_ms, last_seen_ms, data, "
                "user_version) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", _hash(session.id), session.user,
                session.role, session.csrf, int(session.created * 1000), int(session.last_seen * 1000),
                msgspec.json.encode(session.data).decode(), session.version)

    async def delete(self, session_id: str) -> None:
        """Forget (logout)."""
        async with self._db().transaction() as tx:
            await tx.execute("DELETE FROM web_sessions WHERE id_hash = $1", _hash(session_id))


class DbLoginThrottle(_Bound):
    """Lock a key (``user:NAME``, ``ip:ADDR``) after ``max_failures`` within ``window_s``.

    Each further lock of the same key doubles, up to ``max_lock_s`` (the rule of
    :func:`webui.security.lock_duration`; ``web_login_locks.locks``, migration 12).
    """

    def __init__(self, max_failures: int = 5, window_s: float = 900.0, lock_s: float = 900.0,
                 max_lock_s: float = 86_400.0, name_failures: int | None = None) -> None:
        self.max_failures, self.window_ms, self.lock_ms = max_failures, int(window_s * 1000), int(lock_s * 1000)
        self.max_lock_ms = int(max_lock_s * 1000)
        self.name_failures = name_failures or max_failures  #: the limit of ``user:NAME`` keys

    def _limit(self, key: str) -> int:
        return self.name_failures if key.startswith("user:") else self.max_failures

    async def locked(self, *keys: str) -> float:
        """Seconds until every key may try again (0: go ahead)."""
        now = now_ms()
        worst = 0
        async with self._db().transaction() as tx:
            for k in keys:
                until = await tx.fetchval("SELECT until_ms FROM web_login_locks WHERE key = $1", k)
                worst = max(worst, (until or 0) - now)
        return worst / 1000

    async def failure(self, *keys: str) -> None:
        """Count a failed attempt for each key; lock the keys past the limit (longer each time)."""
        now = now_ms()
        async with self._db().transaction() as tx:
            for k in keys:
                await tx.execute("DELETE FROM web_login_failures WHERE key = $1 AND at_ms < $2", k,
                                 now - self.window_ms)
                await tx.execute("INSERT INTO web_login_failures (key, at_ms) VALUES ($1, $2)", k, now)
                if await tx.fetchval("SELECT COUNT(*) FROM web_login_failures WHERE key = $1", k) \
                        >= self._limit(k):
                    last = await tx.fetchrow("SELECT until_ms, locks FROM web_login_locks WHERE key = $1", k)
                    n = int(last["locks"]) if last is not None and now - int(last["until_ms"]) < self.max_lock_ms \
                        else 0
                    lock_ms = int(lock_duration(self.lock_ms, n, self.max_lock_ms))
                    await tx.execute("INSERT INTO web_login_locks (key, until_ms, locks) VALUES ($1, $2, $3) "
                                     "ON CONFLICT (key) DO UPDATE SET until_ms = EXCLUDED.until_ms, "
                                     "locks = EXCLUDED.locks", k, now + lock_ms, n + 1)
                    await tx.execute("DELETE FROM web_login_failures WHERE key = $1", k)

    async def success(self, *keys: str) -> None:
        """Forget the failures and past (ended) locks of these keys."""
        now = now_ms()
        async with self._db().transaction() as tx:
            for k in keys:
                await tx.execute("DELETE FROM web_login_failures WHERE key = $1", k)
                await tx.execute("DELETE FROM web_login_locks WHERE key = $1 AND until_ms <= $2", k, now)
