"""Admin users of the cloud: accounts, roles, two-factor login, lockout and sessions.

The admin API, the admin console pages and ``mchub cloud user`` all go through this
module; it stores everything in the cloud database (``users``, ``user_roles``,
``admin_sessions``; migration 3) and audits every change in ``audit_log``.

* **Passwords**: scrypt (:mod:`provisioning.auth`), policy of 12+ characters from three
  classes; the parameters travel with the hash and are raised on the next login.
* **Second factor**: RFC 6238 TOTP (:mod:`provisioning.totp`; enrolment: :mod:`cloud.users.totp_enrolment`). The
  secret is sealed at rest with the cloud's at-rest key (:class:`cloud.records.crypto_at_rest.AtRest`, column
  ``users.totp_secret``); a used code cannot be replayed. A user without TOTP cannot log
  in at all (``mchub cloud user totp NAME`` enrols one).
* **Lockout**: :class:`provisioning.auth.LockoutPolicy` (5 failures lock 15 min,
  doubling up to 24 h). :func:`attempt_login` says why a login failed
  (:class:`LoginOutcome` ``reason``) so a page can show "locked until 14:05", while
  the *message* never says which factor was wrong.
* **Roles**: ``admin``, ``integration``, ``clinic_staff``, ``auditor`` (the ``roles``
  table); permissions per role in :data:`provisioning.auth.ROLE_PERMISSIONS`, checked
  with :meth:`User.can` / :func:`require`.
* **Sessions** (:mod:`cloud.users.sessions`): ``create_session`` returns a bearer token once; the database keeps
  only its SHA-256 (:func:`provisioning.auth.session_digest`); 8 hours.
* **Session versions** (migration 12): every session, bearer or web page, records the
  user's ``session_version`` when it starts and is refused once the version moves on.
  A role change, password reset, new TOTP secret, disable/enable and logout bump it, so each
  ends every open session of that user at its next request (:mod:`cloud.users.sessions`).

Typical use from a page::

    outcome = await users.attempt_login(db, at_rest, form["username"], form["password"], form["code"],
                                        source=request.client.host)
    if outcome.user is None:
        show(outcome.message)             # zh-CN / English, never which factor
    token, expires_ms = await user_sessions.create_session(db, outcome.user, source=...)
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import msgspec

from cloud import audit
from cloud.db.engine import Database, Row, Tx
from cloud.errors import CloudError
from cloud.records.crypto_at_rest import AtRest, AtRestError
from cloud.users.password_hashing import hashing, verify_dummy
from protocol.ids import now_ms as _now_ms
from provisioning import auth, totp
from provisioning.errors import AuthError, CodeReused, WrongCode

ROLES = tuple(auth.ROLE_PERMISSIONS)  #: admin, integration, clinic_staff, auditor (the ``roles`` table)
TOTP_COLUMN = "users.totp_secret"
_USERNAME = re.compile(r"[a-z][a-z0-9._-]{1,63}")
_ROLE_ORDER = {r: i for i, r in enumerate(ROLES)}

Reason = Literal["ok", "bad_credentials", "locked", "disabled", "no_second_factor", "bad_code", "code_reused",
                 "password_expired"]


class UserError(CloudError):
    """A user operation was refused (unknown user, weak password, bad role, duplicate name).

    ``reason`` is stable (the pages show the catalog text ``refused.<reason>``, the message as detail).
    """

    def __init__(self, message: str, reason: str = "user") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class User:
    """An admin account as pages and handlers see it (no hash, no secret)."""

    id: int
    username: str
    display_name: str
    roles: frozenset[str]
    active: bool
    totp_enabled: bool
    created_ms: int
    totp_pending: bool = False  #: a new one-time-code secret waits for its first code (:func:`confirm_totp`)
    locked_until_ms: int = 0
    last_login_ms: int | None = None
    session_version: int = 0  #: bumped by a role change, password reset, disable and logout

    @property
    def role(self) -> str:
        """The most powerful role (for display and for single-role checks)."""
        return min(self.roles, key=lambda r: _ROLE_ORDER.get(r, 99)) if self.roles else ""

    def can(self, permission: str) -> bool:
        """True when any of the user's roles grants ``permission`` (provisioning.auth.PERMISSIONS)."""
        return any(permission in auth.ROLE_PERMISSIONS.get(r, frozenset()) for r in self.roles)


def require(user: User, permission: str) -> None:
    """Raise :class:`provisioning.errors.Forbidden` unless ``user`` may do ``permission``."""
    if not user.can(permission):
        auth.require(user.role or "nobody", permission)


@dataclass(frozen=True)
class LoginOutcome:
    """The result of :func:`attempt_login`: ``user`` is set only when both factors were right."""

    user: User | None
    reason: Reason
    message: str  #: for the person at the login form (zh-CN / English), never which factor failed
    locked_until_ms: int | None = None

    @property
    def ok(self) -> bool:
        """True for a successful login."""
        return self.user is not None


_SELECT = ("SELECT id, username, display_name, password_hash, totp_secret_enc, totp_pending_enc, active, created_ms, "
           "failures, locks, locked_until_ms, last_totp_step, last_login_ms, session_version, password_changed_ms "
           "FROM users")


def _check_username(username: str) -> None:
    if not _USERNAME.fullmatch(username):
        raise UserError(f"user name {username!r}: 2-64 of a-z 0-9 . _ -, starting with a letter", "bad_username")


def _check_roles(roles: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(roles)
    unknown = chosen - set(ROLES)
    if not chosen or unknown:
        raise UserError(f"roles must be some of {', '.join(ROLES)} (got {', '.join(sorted(chosen)) or 'none'})",
                        "bad_roles")
    return chosen


async def _roles(tx: Tx, user_id: int) -> frozenset[str]:
    return frozenset(r["role"] for r in await tx.fetch("SELECT role FROM user_roles WHERE user_id = $1", user_id))


def _user(r: Row, roles: frozenset[str]) -> User:
    return User(id=int(r["id"]), username=r["username"], display_name=r["display_name"], roles=roles,
                active=bool(r["active"]), totp_enabled=r["totp_secret_enc"] is not None,
                totp_pending=r["totp_pending_enc"] is not None, created_ms=int(r["created_ms"]),
                locked_until_ms=int(r["locked_until_ms"]), last_login_ms=r["last_login_ms"],
                session_version=int(r["session_version"]))


async def _row(tx: Tx, username: str, *, lock: bool = False) -> Row | None:
    suffix = " FOR UPDATE" if lock and tx.dialect == "postgres" else ""
    return await tx.fetchrow(_SELECT + " WHERE username = $1" + suffix, username)


async def _need(tx: Tx, username: str, *, lock: bool = False) -> Row:
    row = await _row(tx, username, lock=lock)
    if row is None:
        raise UserError(f"no user {username!r}; `mchub cloud user list` shows them", "unknown_user")
    return row


async def _policy_hash(password: str, username: str) -> str:
    """The password checked against the policy, then hashed (off the event loop, before any transaction)."""
    try:
        auth.check_password_policy(password, username)
    except AuthError as exc:
        raise UserError(str(exc), "weak_password") from exc
    return await hashing(auth.hash_password, password)


async def create_user(db: Database, username: str, password: str, *, roles: Iterable[str], actor: str,
                      display_name: str = "", now_ms: int | None = None) -> User:
    """Create an account (no second factor yet: call :func:`enable_totp` before it can log in)."""
    _check_username(username)
    chosen = _check_roles(roles)
    hashed = await _policy_hash(password, username)
    now = _now_ms() if now_ms is None else now_ms
    async with db.transaction() as tx:
        if await _row(tx, username) is not None:
            raise UserError(f"user {username!r} already exists", "user_exists")
        await tx.execute("INSERT INTO users (username, display_name, password_hash, active, created_ms, "
                         "password_changed_ms) VALUES ($1, $2, $3, TRUE, $4, $5)",
                         username, display_name, hashed, now, now)
        row = await _need(tx, username)
        user_id = int(row["id"])
        await tx.executemany("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)",
                             [(user_id, r) for r in sorted(chosen)])
        await audit.write(tx, actor=actor, action="user.add", outcome="ok", target=username, at_ms=now,
                          detail={"roles": ",".join(sorted(chosen))})
        return _user(row, chosen)


async def get_user(db: Database, username: str) -> User | None:
    """The account, or None."""
    async with db.transaction() as tx:
        row = await _row(tx, username)
        return None if row is None else _user(row, await _roles(tx, int(row["id"])))


async def list_users(db: Database) -> list[User]:
    """Every account, by name."""
    async with db.transaction() as tx:
        rows = await tx.fetch(_SELECT + " ORDER BY username")
        granted: dict[int, set[str]] = {}
        for r in await tx.fetch("SELECT user_id, role FROM user_roles"):
            granted.setdefault(int(r["user_id"]), set()).add(r["role"])
        return [_user(r, frozenset(granted.get(int(r["id"]), ()))) for r in rows]


async def set_password(db: Database, username: str, password: str, *, actor: str,
                       now_ms: int | None = None) -> None:
    """Replace the password (policy checked), clear a lock and end the user's sessions."""
    hashed = await _policy_hash(password, username)
    now = _now_ms() if now_ms is None else now_ms
    async with db.transaction() as tx:
        row = await _need(tx, username, lock=True)
        await tx.execute("UPDATE users SET password_hash = $1, password_changed_ms = $2, failures = 0, "
                         "locked_until_ms = 0 WHERE id = $3", hashed, now, int(row["id"]))
        await _end_all_sessions(tx, int(row["id"]), now)
        await _bump(tx, int(row["id"]))
        await audit.write(tx, actor=actor, action="user.password", outcome="ok", target=username, at_ms=now)


async def set_roles(db: Database, username: str, roles: Iterable[str], *, actor: str) -> None:
    """Replace the user's roles."""
    chosen = _check_roles(roles)
    async with db.transaction() as tx:
        user_id = int((await _need(tx, username, lock=True))["id"])
        await tx.execute("DELETE FROM user_roles WHERE user_id = $1", user_id)
        await tx.executemany("INSERT INTO user_roles (user_id, role) VALUES ($1, $2)",
                             [(user_id, r) for r in sorted(chosen)])
        await _bump(tx, user_id)
        await audit.write(tx, actor=actor, action="user.roles", outcome="ok", target=username,
                          detail={"roles": ",".join(sorted(chosen))})


async def set_active(db: Database, username: str, active: bool, *, actor: str, now_ms: int | None = None) -> None:
    """Disable (ends every session at once) or re-enable an account."""
    now = _now_ms() if now_ms is None else now_ms
    async with db.transaction() as tx:
        user_id = int((await _need(tx, username, lock=True))["id"])
        await tx.execute("UPDATE users SET active = $1 WHERE id = $2", active, user_id)
        if not active:
            await _end_all_sessions(tx, user_id, now)
        await _bump(tx, user_id)
        await audit.write(tx, actor=actor, action="user.enable" if active else "user.disable", outcome="ok",
                          target=username, at_ms=now)


LOGIN_MESSAGES: dict[str, str] = {  #: for the API and the CLI; the pages use the catalog (``login.<reason>``)
    "locked": "账户已锁定，请稍后再试或联系其他管理员 / account locked after repeated failures; try later or ask "
              "another admin",
    "no_second_factor": "此账户尚未启用动态码：请管理员显示二维码并确认首个动态码 / this account has no confirmed "
                        "one-time-code app yet: an admin shows its QR code on the users page (or runs `mchub cloud "
                        "user totp NAME`)",
    "bad_code": "动态码错误 / wrong one-time code: type the code your app shows now",
    "code_reused": "此动态码已用过，请等待下一个 / this code was already used; wait for the next one",
    "disabled": "账户已停用，请联系管理员 / this account is disabled; ask an admin",
    "password_expired": "密码已过期，请管理员重设 / the password has expired; an admin sets a new one "
                        "(`mchub cloud user passwd NAME`)",
}


def _refused(reason: Reason, locked_until_ms: int | None = None) -> LoginOutcome:
    """A refusal. Only ``bad_credentials`` and ``locked`` reach someone without the right password."""
    message = LOGIN_MESSAGES.get(reason, "用户名或密码错误 / wrong username or password")
    return LoginOutcome(None, reason, message, locked_until_ms if reason == "locked" else None)


_POLICY = auth.LockoutPolicy()
_LOGIN_STATE = ("password_hash", "totp_secret_enc", "active", "failures", "locks", "locked_until_ms",
                "last_totp_step")  #: the columns a login decision is made on


async def attempt_login(db: Database, at_rest: AtRest, username: str, password: str, code: str, *,
                        source: str = "", now_ms: int | None = None, policy: auth.LockoutPolicy = _POLICY,
                        password_max_age_ms: int = 0) -> LoginOutcome:
    """Check both factors, update failure counts and lock, audit; never raises for a wrong login.

    The reason says what went wrong only as far as the caller has proved who they are
    (docs/dashboard.md, "Sign-in messages"): ``bad_credentials`` for an unknown name or a wrong password alike,
    ``locked`` before anything is checked; after the right password ``disabled``,
    ``no_second_factor``, ``bad_code`` or ``code_reused``; after both factors
    ``password_expired`` (older than ``password_max_age_ms``; 0 = passwords never expire).

    The password hash (scrypt, ~0.1-0.3 s) is checked in a worker thread with NO database
    transaction open: the account is read, judged outside, then written back in a short
    transaction only if its login state did not change meanwhile (else judged again), so a
    stream of failed logins never holds up other transactions (one connection on SQLite).
    """
    now = _now_ms() if now_ms is None else now_ms
    detail: dict[str, object] = {"source": source}
    for _ in range(3):
        async with db.transaction() as tx:
            row = await _row(tx, username)
            roles = await _roles(tx, int(row["id"])) if row is not None else frozenset()
        if row is None:  # same answer and same work as a wrong password
            await hashing(verify_dummy, password)
            async with db.transaction() as tx:
                await audit.write(tx, actor=username[:64], action="admin.login_failed", outcome="refused",
                                  target=username[:64], reason="unknown_user", detail=detail, at_ms=now)
            return _refused("bad_credentials")
        r = row
        if (not r["active"] or r["totp_secret_enc"] is None) and int(r["locked_until_ms"]) <= now:
            right = bool(r["password_hash"]) and await _password_right(password, r["password_hash"])
            why: Reason = "bad_credentials" if not right else "disabled" if not r["active"] else "no_second_factor"
            async with db.transaction() as tx:
                await audit.write(tx, actor=username, action="admin.login_failed", outcome="refused",
                                  target=username, reason=why, detail=detail, at_ms=now)
            return _refused(why)
        try:
            secret = at_rest.open(bytes(r["totp_secret_enc"]), TOTP_COLUMN) if r["totp_secret_enc"] else ""
        except AtRestError as exc:
            raise UserError(f"the one-time-code secret of {username!r} does not open (wrong at-rest key?); "
                            "re-enrol it with `mchub cloud user totp`") from exc
        state = auth.AdminUser(
            username=username, role="admin", password_hash=r["password_hash"] or "scrypt$0$0$0$$",
            totp_secret=secret or totp.new_secret(),  # no secret yet: no code can match
            failures=int(r["failures"]), locks=int(r["locks"]),
            locked_until_ms=int(r["locked_until_ms"]), last_totp_step=r["last_totp_step"],
        )
        try:
            result = await hashing(functools.partial(auth.login, state, password, code, now_ms=now, policy=policy))
        except AuthError:  # a damaged hash: count it as a failure, tell the admins in the audit log
            result = auth.LoginResult(msgspec.structs.replace(state, failures=state.failures + 1),
                                      AuthError("damaged password hash"))
        assert result is not None
        rehashed = (await hashing(auth.hash_password, password)
                    if result.ok and auth.needs_rehash(state.password_hash) else None)
        async with db.transaction() as tx:
            current = await _row(tx, username, lock=True)
            if current is None or any(current[k] != r[k] for k in _LOGIN_STATE):
                continue  # another login or an admin changed the account meanwhile: judge again on what is there
            changed = r["password_changed_ms"]
            expired = bool(password_max_age_ms) and changed is not None and now - int(changed) > password_max_age_ms
            outcome = await _record_login(tx, r, roles, result, rehashed, username, detail, now, expired=expired)
        return outcome
    async with db.transaction() as tx:  # the account kept changing under us: refuse, audited
        await audit.write(tx, actor=username[:64], action="admin.login_failed", outcome="refused",
                          target=username[:64], reason="bad_credentials", detail={**detail, "contended": "yes"},
                          at_ms=now)
    return _refused("bad_credentials")


async def _password_right(password: str, stored: str) -> bool:
    try:
        return await hashing(auth.verify_password, password, stored)
    except AuthError:  # a damaged hash is a wrong password here (the audit log names the account)
        return False


async def _record_login(tx: Tx, r: Row, roles: frozenset[str], result: auth.LoginResult, rehashed: str | None,
                        username: str, detail: dict[str, object], now: int, *, expired: bool) -> LoginOutcome:
    u = result.user
    signed_in = result.ok and not expired
    await tx.execute("UPDATE users SET failures = $1, locks = $2, locked_until_ms = $3, last_totp_step = $4, "
                     "last_login_ms = $5 WHERE id = $6", u.failures, u.locks, u.locked_until_ms,
                     u.last_totp_step, now if signed_in else r["last_login_ms"], int(r["id"]))
    if rehashed is not None:
        await tx.execute("UPDATE users SET password_hash = $1 WHERE id = $2", rehashed, int(r["id"]))
    if signed_in:
        await audit.write(tx, actor=username, action="admin.login", outcome="ok", target=username,
                          detail=detail, at_ms=now)
        user = _user(r, roles)
        return LoginOutcome(dataclasses.replace(user, locked_until_ms=0, last_login_ms=now), "ok", "")
    why: Reason
    if result.ok:
        why = "password_expired"
    elif u.locked_until_ms > now:
        why = "locked"
    elif isinstance(result.error, CodeReused):
        why = "code_reused"
    elif isinstance(result.error, WrongCode):
        why = "bad_code"
    else:
        why = "bad_credentials"
    await audit.write(tx, actor=username, action="admin.login_failed", outcome="refused", target=username,
                      reason=why, detail={**detail, "failures": str(u.failures)}, at_ms=now)
    return _refused(why, u.locked_until_ms)


async def verify_login(db: Database, username: str, password: str, totp_code: str, *, at_rest: AtRest,
                       source: str = "") -> User | None:
    """The user when password and one-time code are right, else None (see :func:`attempt_login` for why)."""
    return (await attempt_login(db, at_rest, username, password, totp_code, source=source)).user


async def _bump(tx: Tx, user_id: int) -> None:
    """Move the user's session version on: every session started before ends at its next request."""
    await tx.execute("UPDATE users SET session_version = session_version + 1 WHERE id = $1", user_id)


async def _end_all_sessions(tx: Tx, user_id: int, now: int) -> None:
    await tx.execute("UPDATE admin_sessions SET ended_ms = $1 WHERE user_id = $2 AND ended_ms IS NULL", now, user_id)
