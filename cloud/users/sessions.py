"""Sessions of cloud users: bearer tokens (the admin API) shown once and kept as digests, their
end, and the session version that ends every session of a user at once (migration 12).
"""

from __future__ import annotations

from cloud import audit
from cloud.db.engine import Database
from cloud.users.accounts import User, _bump, _end_all_sessions, _roles, _row, _user
from protocol.ids import now_ms as _now_ms
from provisioning import auth


async def create_session(db: Database, user: User, *, source: str = "", now_ms: int | None = None,
                         lifetime_ms: int = auth.SESSION_MS) -> tuple[str, int]:
    """A new bearer token for ``user`` (shown once) and its expiry; the database keeps its digest."""
    now = _now_ms() if now_ms is None else now_ms
    token = auth.new_session_token()
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO admin_sessions (token_digest, user_id, created_ms, expires_ms, source, "
                         "user_version) VALUES ($1, $2, $3, $4, $5, $6)", auth.session_digest(token), user.id, now,
                         now + lifetime_ms, source[:128], user.session_version)
    return token, now + lifetime_ms


async def session_user(db: Database, token: str, *, now_ms: int | None = None) -> User | None:
    """The active user holding this session token, or None (unknown, expired, ended, user disabled)."""
    if not token.startswith("mchs_"):
        return None
    now = _now_ms() if now_ms is None else now_ms
    async with db.transaction() as tx:
        row = await tx.fetchrow(
            "SELECT u.id, u.username, u.display_name, u.totp_secret_enc, u.totp_pending_enc, u.active, u.created_ms, "
            "u.locked_until_ms, u.last_login_ms, u.session_version "
            "FROM admin_sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.token_digest = $1 AND s.ended_ms IS NULL AND s.expires_ms > $2 "
            "AND s.user_version = u.session_version", auth.session_digest(token), now)
        if row is None or not row["active"]:
            return None
        return _user(row, await _roles(tx, int(row["id"])))


async def end_session(db: Database, token: str, *, now_ms: int | None = None) -> None:
    """Log out: the token stops working at once (audited)."""
    now = _now_ms() if now_ms is None else now_ms
    async with db.transaction() as tx:
        row = await tx.fetchrow("SELECT u.id, u.username FROM admin_sessions s JOIN users u ON u.id = s.user_id "
                                "WHERE s.token_digest = $1 AND s.ended_ms IS NULL", auth.session_digest(token))
        if row is None:
            return
        await tx.execute("UPDATE admin_sessions SET ended_ms = $1 WHERE token_digest = $2", now,
                         auth.session_digest(token))
        await _bump(tx, int(row["id"]))
        await audit.write(tx, actor=row["username"], action="admin.logout", outcome="ok", target=row["username"],
                          at_ms=now)


async def session_version(db: Database, username: str) -> int | None:
    """The user's current session version, or None when the account is unknown or disabled."""
    row = await db.fetchrow("SELECT session_version, active FROM users WHERE username = $1", username)
    return int(row["session_version"]) if row is not None and row["active"] else None


async def logout(db: Database, username: str, *, source: str = "", now_ms: int | None = None) -> None:
    """Sign a user out everywhere: every web page and bearer session of theirs ends (audited)."""
    now = _now_ms() if now_ms is None else now_ms
    async with db.transaction() as tx:
        row = await _row(tx, username, lock=True)
        if row is None:
            return
        await _end_all_sessions(tx, int(row["id"]), now)
        await _bump(tx, int(row["id"]))
        await audit.write(tx, actor=username, action="admin.logout", outcome="ok", target=username,
                          detail={"source": source}, at_ms=now)
