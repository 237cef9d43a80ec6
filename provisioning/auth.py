"""Admin authentication: scrypt passwords, TOTP second factor, roles, lockout, sessions.

The level aimed at is GB/T 22239 (等保 2.0) level 3 "identity authentication": two
different factors (password + TOTP), password complexity, lockout after repeated
failures, and session expiry.

**Password hashing: scrypt** (``hashlib.scrypt``, OpenSSL; it releases the GIL for the
whole hash, where ``cryptography``'s ``Scrypt`` stalled a server's event loop thread by tens
of milliseconds per hash — tests/cloud/test_event_loop.py) with N = 2^15, r = 8, p = 1
(32 MiB of memory, about 0.1 s on one server core), a 16-byte random salt and a 32-byte
output, stored as ``scrypt$<log2 N>$<r>$<p>$<salt b64>$<hash b64>``. The parameters
travel with the hash, so they can be raised later: :func:`needs_rehash` tells the login
handler to re-hash with the current ones after a successful login.

**Lockout** (:class:`LockoutPolicy`): after 5 consecutive failures the account locks for
15 minutes, doubling with each further lock up to 24 hours; a success resets the count.
Failures count whichever factor was wrong, and a locked account is refused before the
password is even checked (no guessing while locked). A wrong password is one plain
"wrong username or password"; only after the right password does the error name the code
problem (:class:`~provisioning.errors.WrongCode`, :class:`~provisioning.errors.CodeReused`),
as a two-step sign-in would (docs/dashboard.md, "Sign-in messages").

**Roles** (:data:`ROLE_PERMISSIONS`, the same names as the cloud's ``roles`` table):
``admin`` does everything; ``integration`` watches hubs, queues and the audit log and may
replay dead letters, but cannot change the fleet; ``clinic_staff`` only reads sites, hubs
and devices; ``auditor`` reads the audit log and the fleet, and changes nothing.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

import msgspec

from provisioning import totp
from provisioning.errors import AccountLocked, AuthError, CodeReused, Forbidden, WrongCode

Role = Literal["admin", "integration", "clinic_staff", "auditor"]
PERMISSIONS = (
    "site:read", "site:write", "token:create", "hub:read", "hub:revoke", "device:read", "device:write",
    "audit:read", "queue:replay", "user:write",
)
ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "integration": frozenset({"site:read", "hub:read", "device:read", "audit:read", "queue:replay"}),
    "clinic_staff": frozenset({"site:read", "hub:read", "device:read"}),
    "auditor": frozenset({"site:read", "hub:read", "device:read", "audit:read"}),
}
SCRYPT_LOG_N = 15
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSWORD = 12
SESSION_MS = 8 * 3_600_000


def require(role: str, permission: str) -> None:
    """Raise Forbidden unless ``role`` has ``permission``."""
    if permission not in ROLE_PERMISSIONS.get(role, frozenset()):
        raise Forbidden(f"角色 {role} 无权执行此操作 / role {role!r} may not do {permission}")


def check_password_policy(password: str, username: str = "") -> None:
    """At least 12 characters, three of four classes (lower, upper, digit, other), not the username."""
    classes = sum(any(f(c) for c in password) for f in (str.islower, str.isupper, str.isdigit,
                                                         lambda c: not c.isalnum()))
    if len(password) < MIN_PASSWORD or classes < 3 or (username and username.lower() in password.lower()):
        raise AuthError(f"密码太弱 / a password needs {MIN_PASSWORD}+ characters from three of: lower case, upper "
                        "case, digits, symbols, and must not contain the username")


def hash_password(password: str, *, log_n: int = SCRYPT_LOG_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """Encoded scrypt hash of ``password`` with a fresh salt."""
    salt = secrets.token_bytes(16)
    digest = _scrypt(password.encode(), salt, log_n, r, p)
    return f"scrypt${log_n}${r}${p}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against an encoded hash."""
    try:
        kind, log_n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt" or not 10 <= int(log_n) <= 20:
            raise ValueError(kind)
        salt_raw, expected = base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)
        if not (1 <= int(r) <= 32 and 1 <= int(p) <= 16 and len(expected) == 32):
            raise ValueError("parameters")
        actual = _scrypt(password.encode(), salt_raw, int(log_n), int(r), int(p))
    except (ValueError, binascii.Error) as exc:
        raise AuthError("the stored password hash is damaged; reset this user's password") from exc
    return hmac.compare_digest(actual, expected)


def _scrypt(secret: bytes, salt: bytes, log_n: int, r: int, p: int) -> bytes:
    n = 2**log_n
    return hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=128 * r * (n + p + 2) + (1 << 20))


def needs_rehash(stored: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return not stored.startswith(f"scrypt${SCRYPT_LOG_N}${SCRYPT_R}${SCRYPT_P}$")


@dataclass(frozen=True)
class LockoutPolicy:
    """How many failures lock an account, and for how long."""

    max_failures: int = 5
    lock_ms: int = 15 * 60_000
    max_lock_ms: int = 24 * 3_600_000


class AdminUser(msgspec.Struct, frozen=True, kw_only=True):
    """An admin account as the cloud stores it (encrypt ``totp_secret`` at rest)."""

    username: str
    role: Role
    password_hash: str
    totp_secret: str
    failures: int = 0
    locks: int = 0  #: how many times it was locked in a row (for the doubling)
    locked_until_ms: int = 0
    last_totp_step: int | None = None
    disabled: bool = False


@dataclass(frozen=True)
class LoginResult:
    """Updated user state (always save it) and the error to answer with, if any."""

    user: AdminUser
    error: AuthError | None = None

    @property
    def ok(self) -> bool:
        """True when both factors were right."""
        return self.error is None


def login(user: AdminUser | None, password: str, code: str, *, now_ms: int,
          policy: LockoutPolicy = LockoutPolicy()) -> LoginResult | None:
    """Check password and TOTP; returns None for an unknown user (answer like a wrong password).

    The error of a refused login: :class:`AccountLocked`; :class:`WrongCode` or
    :class:`CodeReused` when the password was right; else a plain :class:`AuthError`.
    """
    if user is None:
        return None
    if user.disabled:
        return LoginResult(user, AuthError("用户名或密码错误 / wrong username or password"))
    if now_ms < user.locked_until_ms:
        return LoginResult(user, AccountLocked("账户已锁定 / account locked after repeated failures; try later or ask "
                                               "another admin", user.locked_until_ms))
    step: int | None = None
    error: AuthError = AuthError("用户名或密码错误 / wrong username or password")
    if verify_password(password, user.password_hash):
        try:
            step = totp.verify(user.totp_secret, code, unix_s=now_ms / 1000, last_step=user.last_totp_step)
        except (WrongCode, CodeReused) as exc:  # the password was right: the caller may say which code problem
            error = exc
        except AuthError:
            error = WrongCode("wrong one-time code")
    if step is None:
        failures = user.failures + 1
        if failures >= policy.max_failures:
            lock = min(policy.lock_ms * 2**user.locks, policy.max_lock_ms)
            locked = msgspec.structs.replace(user, failures=0, locks=user.locks + 1, locked_until_ms=now_ms + lock)
            return LoginResult(locked, AccountLocked(f"账户已锁定 / too many failures; locked for {lock // 60_000} min",
                                                     now_ms + lock))
        return LoginResult(msgspec.structs.replace(user, failures=failures), error)
    return LoginResult(msgspec.structs.replace(user, failures=0, locks=0, locked_until_ms=0, last_totp_step=step))


def new_session_token() -> str:
    """A bearer token for the admin API (shown once; store :func:`session_digest`)."""
    return "mchs_" + secrets.token_urlsafe(32)


def session_digest(token: str) -> str:
    """How the cloud stores a session token (SHA-256 hex: 256 random bits need no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_digest(a: str, b: str) -> bool:
    """Constant-time comparison of two hex digests."""
    return hmac.compare_digest(a.encode(), b.encode())
