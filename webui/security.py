"""Page security for every screen: sessions, CSRF, headers, roles, brute-force lockout.

:class:`WebSecurity` is plain ASGI middleware (so Server-Sent Events stream through it):

* every request outside ``exempt`` prefixes gets a server-side session (an anonymous
  one until login, so even the login form carries a CSRF token); the cookie is
  ``HttpOnly; SameSite=Strict; Path=/`` and ``Secure`` unless configured off for a
  plain-HTTP clinic LAN;
* a session idle longer than ``idle_timeout`` ends;
* a signed-in session whose user's version has moved on ends at its next request:
  ``user_version(name)`` (given by the app) answers the user's current session version, or
  None when the account is gone or disabled. The cloud bumps it on a role change, password
  reset, disable and logout; the hub derives it from the staff entry in hub.toml;
* every unsafe request (POST, PUT, PATCH, DELETE) must carry the session's CSRF token in
  the ``X-CSRF-Token`` header or a ``csrf_token`` form field, else 403;
* every response gets CSP, no-sniff, no-referrer, frame-deny and no-store headers.

Endpoints declare who may see them with :func:`require`; :func:`sign_in` rotates the
session id (no fixation) and :func:`sign_out` ends it.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import wraps
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from webui.sessions import COOKIE, Session, SessionStore

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
ANONYMOUS = "anonymous"
#: the current session version of a user name, or None when the account is gone or disabled
UserVersion = Callable[[str], Awaitable[int | None]]


class WebSecurity:
    """ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp, store: SessionStore, *, idle_timeout: float = 900.0,
                 secure_cookie: bool = True, exempt: Sequence[str] = (), max_form_bytes: int = 1 << 20,
                 user_version: UserVersion | None = None) -> None:
        self.app, self.store, self.idle, self.user_version = app, store, idle_timeout, user_version
        self.secure, self.exempt, self.max_form = secure_cookie, tuple(exempt), max_form_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        session, fresh = await self._session(scope)
        state = scope.setdefault("state", {})
        state["session"], state["session_store"] = session, self.store
        if fresh:
            state["set_session_cookie"] = True
        if scope["method"] not in SAFE_METHODS:
            token, receive = await self._csrf_token(scope, receive)
            if token is None or not hmac.compare_digest(token, session.csrf):
                response = PlainTextResponse("CSRF token missing or wrong / 页面已过期，请刷新后重试", 403)
                await response(scope, receive, self._wrap_send(scope, send))
                return
        await self.app(scope, receive, self._wrap_send(scope, send))

    async def _session(self, scope: Scope) -> tuple[Session, bool]:
        cookie = SimpleCookie()
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie.load(value.decode("latin-1"))
        sid = cookie[COOKIE].value if COOKIE in cookie else None
        now = time.time()
        session = await self.store.get(sid) if sid else None
        if session is not None and (now - session.last_seen > self.idle or not await self._current(session)):
            await self.store.delete(session.id)
            session = None
        if session is None:
            session = Session.new("", ANONYMOUS, now)
            await self.store.put(session)
            return session, True
        session.last_seen = now
        await self.store.put(session)
        return session, False

    async def _current(self, session: Session) -> bool:
        """False when the signed-in user's version moved on since sign-in (or the account is gone)."""
        if session.role == ANONYMOUS or self.user_version is None:
            return True
        return await self.user_version(session.user) == session.version

    async def _csrf_token(self, scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
        headers = dict(scope["headers"])
        if b"x-csrf-token" in headers:
            return headers[b"x-csrf-token"].decode("latin-1"), receive
        if not headers.get(b"content-type", b"").startswith(b"application/x-www-form-urlencoded"):
            return None, receive
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_form:
                return None, receive
        token = parse_qs(body.decode("utf-8", "replace")).get("csrf_token", [None])[0]
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return token, replay

    def _wrap_send(self, scope: Scope, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {h[0].lower() for h in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                state = scope.get("state", {})
                if state.get("set_session_cookie"):
                    session: Session = state["session"]
                    attrs = f"{COOKIE}={session.id}; Path=/; HttpOnly; SameSite=Strict"
                    headers.append((b"set-cookie", (attrs + ("; Secure" if self.secure else "")).encode()))
                message = {**message, "headers": headers}
            await send(message)

        return wrapped


def session_of(request: Request) -> Session:
    """The request's session (anonymous before login)."""
    session: Session = request.scope["state"]["session"]
    return session


async def sign_in(request: Request, user: str, role: str, version: int = 0) -> Session:
    """Replace the request's session by a new, signed-in one (new id: no session fixation).

    ``version`` is the user's session version read together with the credentials it was
    granted on (see :class:`WebSecurity` ``user_version``)."""
    store: SessionStore = request.scope["state"]["session_store"]
    old = session_of(request)
    await store.delete(old.id)
    session = Session.new(user, role, version=version)
    session.data = dict(old.data)
    await store.put(session)
    request.scope["state"]["session"] = session
    request.scope["state"]["set_session_cookie"] = True
    return session


async def sign_out(request: Request) -> None:
    """End the session; the next request starts a new anonymous one."""
    store: SessionStore = request.scope["state"]["session_store"]
    await store.delete(session_of(request).id)


Endpoint = Callable[[Request], Awaitable[Response]]


def require(*roles: str, login_path: str = "/login") -> Callable[[Endpoint], Endpoint]:
    """Only signed-in users with one of ``roles`` reach the endpoint.

    Not signed in: pages redirect to the login form, APIs (``/api/`` paths or JSON
    requests) get 401. Signed in with another role: 403.
    """

    def decorate(endpoint: Endpoint) -> Endpoint:
        @wraps(endpoint)
        async def guarded(request: Request) -> Response:
            session = session_of(request)
            wants_json = request.url.path.startswith("/api/") or "json" in request.headers.get("accept", "")
            if session.role == ANONYMOUS:
                if wants_json:
                    return JSONResponse({"reason": "unauthenticated", "message": "sign in first"}, 401)
                return RedirectResponse(f"{login_path}?next={quote(request.url.path)}", 303)
            if roles and session.role not in roles:
                if wants_json:
                    return JSONResponse({"reason": "forbidden", "message": "your role may not do this"}, 403)
                return PlainTextResponse("您没有权限查看此页面 / You do not have permission to see this page", 403)
            return await endpoint(request)

        return guarded

    return decorate


def lock_duration(lock_s: float, locks: int, max_lock_s: float) -> float:
    """How long the ``locks``-th lock in a row lasts: ``lock_s`` doubled each time, at most ``max_lock_s``.

    The one escalation rule of every sign-in door (hub staff, cloud pages per address; the cloud's
    account lock in :class:`provisioning.auth.LockoutPolicy` doubles the same way).
    """
    return float(min(lock_s * 2 ** min(locks, 32), max_lock_s))


@dataclass
class LoginThrottle:
    """Lock a user name (and separately a client address) after repeated failures.

    ``max_failures`` failures within ``window_s`` lock the key for ``lock_s``; each further
    lock of the same key doubles, up to ``max_lock_s`` (24 h), so one address gets about 35
    guesses on its first day and 5 a day after that, not 480. A success forgets the key; a key
    whose last lock ended more than ``max_lock_s`` ago starts again at ``lock_s``. At most
    ``max_keys`` keys are remembered (the least recently failed, unlocked ones go first), so a
    flood of made-up user names cannot grow memory without bound.
    """

    max_failures: int = 5
    window_s: float = 900.0
    lock_s: float = 900.0
    max_lock_s: float = 86_400.0
    max_keys: int = 10_000
    clock: Callable[[], float] = time.time  #: seconds; a test may turn it forward
    failures: dict[str, list[float]] = field(default_factory=dict)
    locked_until: dict[str, float] = field(default_factory=dict)
    locks: dict[str, int] = field(default_factory=dict)

    def locked(self, *keys: str, now: float | None = None) -> float:
        """Seconds until any of ``keys`` may try again (0: go ahead)."""
        t = self.clock() if now is None else now
        return max([self.locked_until.get(k, 0.0) - t for k in keys] + [0.0])

    def failure(self, *keys: str, now: float | None = None) -> None:
        """Record a failed attempt for each key; lock a key past the limit (longer each time)."""
        t = self.clock() if now is None else now
        for k in keys:
            recent = [x for x in self.failures.get(k, []) if t - x < self.window_s] + [t]
            self.failures[k] = recent
            if len(recent) >= self.max_failures:
                ended = self.locked_until.get(k)
                n = self.locks.get(k, 0) if ended is not None and t - ended < self.max_lock_s else 0
                self.locked_until[k] = t + lock_duration(self.lock_s, n, self.max_lock_s)
                self.locks[k] = n + 1
                self.failures[k] = []
        self._bound(t)

    def success(self, *keys: str) -> None:
        """Forget the failures and past locks of these keys."""
        for k in keys:
            self.failures.pop(k, None)
            self.locks.pop(k, None)
            self.locked_until.pop(k, None)

    def _bound(self, t: float) -> None:
        if len(self.failures) + len(self.locked_until) <= self.max_keys:
            return
        for k in [k for k, until in self.locked_until.items() if t - until >= self.max_lock_s]:
            self.locked_until.pop(k, None)
            self.locks.pop(k, None)
        idle = sorted((k for k in self.failures if self.locked_until.get(k, 0.0) <= t),
                      key=lambda k: self.failures[k][-1] if self.failures[k] else 0.0)
        for k in idle[: max(1, len(idle) // 2)]:
            self.failures.pop(k, None)


def csrf_field(request: Request) -> dict[str, Any]:
    """Template context for forms: ``{{ csrf_token }}``."""
    return {"csrf_token": session_of(request).csrf}
