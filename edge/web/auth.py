"""Staff sign-in for the hub's status page, and the console token of ``mchub edge status``.

Staff are listed in hub.toml (``[[web.users]] name, secret_file``); the secret is a PIN of
at least 6 digits or a password, stored only as a scrypt hash in a 0600 file
(:mod:`edge.staff_secrets`; ``mchub edge hash-password --out FILE`` makes one). A secret
shorter than 6 characters is refused before any hash is computed.
After 5 wrong tries within 15 minutes the user name, and separately the client address,
is locked for 15 minutes, each further lock twice as long up to 24 hours
(:class:`webui.security.LoginThrottle`); every sign-in, failure and lock is written to the
hub's audit table. A staff session ends at its next request once its user is removed from
hub.toml or gets a new PIN (a reload, ``kill -HUP``): :meth:`StaffLogin.user_version`.

The console token lets ``mchub edge status`` on the hub itself read ``/api/status``
without a person signing in: the hub writes a fresh random token to
``data_dir/console.token`` (mode 0600, readable only by the hub's own user) at every start,
and a request carrying ``Authorization: Bearer <token>`` is served with role ``console``.
"""

from __future__ import annotations

import asyncio
import hmac
import os
import secrets
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.hub_view import HubView
from edge.staff_secrets import secret_problem
from provisioning.auth import verify_password
from provisioning.errors import AuthError
from webui.security import ANONYMOUS, LoginThrottle, session_of, sign_in, sign_out
from webui.sessions import Session

if TYPE_CHECKING:
    from webui.render import Renderer

STAFF = "staff"
CONSOLE = "console"
TOKEN_FILE = "console.token"  # noqa: S105 - a file name, not a secret
#: verified against when the user name is unknown, so both cases take as long
_DUMMY = "scrypt$15$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def write_console_token(data_dir: Path) -> str:
    """A fresh token in ``data_dir/console.token`` (0600); returns it."""
    token = secrets.token_urlsafe(32)
    path = data_dir / TOKEN_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, token.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return token


def read_console_token(data_dir: Path) -> str | None:
    """The running hub's console token, or None (not running, or not readable by this user)."""
    try:
        return (data_dir / TOKEN_FILE).read_text(encoding="ascii").strip() or None
    except OSError:
        return None


class ConsoleToken:
    """ASGI gate in front of :class:`webui.security.WebSecurity`: a valid bearer token on an
    ``/api/`` path is served directly with a ``console`` session (no cookie, so no CSRF risk)."""

    def __init__(self, secured: ASGIApp, inner: ASGIApp, token: str) -> None:
        self.secured, self.inner, self.token = secured, inner, token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            auth = dict(scope["headers"]).get(b"authorization", b"")
            if auth.startswith(b"Bearer ") and hmac.compare_digest(auth[7:].strip(), self.token):
                state = scope.setdefault("state", {})
                state["session"], state["session_store"] = Session.new("console", CONSOLE), None
                await self.inner(scope, receive, send)
                return
        await self.secured(scope, receive, send)


class StaffLogin:
    """``GET/POST /login`` and ``POST /logout``."""

    def __init__(self, hub: HubView, renderer: Renderer, throttle: LoginThrottle | None = None) -> None:
        self.hub, self.renderer = hub, renderer
        self.throttle = throttle or LoginThrottle()

    def _users(self) -> dict[str, str]:
        return {u.name: u.secret_hash for u in self.hub.cfg.web.users}

    async def user_version(self, name: str) -> int | None:
        """The staff user's session version: a checksum of their current hash (None: no longer listed)."""
        stored = self._users().get(name)
        return None if stored is None else zlib.crc32(stored.encode())

    async def form(self, request: Request, error: str = "", status: int = 200) -> Response:
        """The sign-in form (a PIN or a password)."""
        nxt = request.query_params.get("next", "/")
        return self.renderer.page(request, "login.html", {
            "error": error, "next": nxt if nxt.startswith("/") and not nxt.startswith("//") else "/",
            "no_users": not self.hub.cfg.web.users}, status_code=status)

    async def login(self, request: Request) -> Response:
        """Check the secret; throttle, audit, sign in."""
        form = await request.form()
        user, secret = str(form.get("user", ""))[:64], str(form.get("password", ""))[:256]
        client = f"ip:{request.client.host if request.client else '-'}"
        t = self.renderer.catalog.t
        lang = self.renderer.language(request)
        wait = self.throttle.locked(f"user:{user}", client)
        if wait:
            await self._audit("login_locked", user, f"from {client}")
            return await self.form(request, t("login.locked", lang, minutes=max(1, round(wait / 60))), 429)
        if secret_problem(secret):  # never a valid PIN: no hash to compute, counts as a failed try
            self.throttle.failure(f"user:{user}", client)
            await self._audit("login_failed", user, f"from {client}: PIN under 6 characters")
            return await self.form(request, t("login.pin_too_short", lang), 401)
        stored = self._users().get(user)
        try:
            ok = await asyncio.to_thread(verify_password, secret, stored or _DUMMY) and stored is not None
        except AuthError:
            ok = False
        if not ok:
            self.throttle.failure(f"user:{user}", client)
            await self._audit("login_failed", user, f"from {client}")
            return await self.form(request, t("login.failed", lang), 401)
        self.throttle.success(f"user:{user}", client)
        await sign_in(request, user, STAFF, await self.user_version(user) or 0)
        await self._audit("login", user, f"from {client}")
        nxt = str(form.get("next", "/"))
        return RedirectResponse(nxt if nxt.startswith("/") and not nxt.startswith("//") else "/", 303)

    async def logout(self, request: Request) -> Response:
        """End the session."""
        session = session_of(request)
        if session.role != ANONYMOUS:
            await self._audit("logout", session.user, "")
        await sign_out(request)
        return RedirectResponse("/login", 303)

    async def _audit(self, kind: str, actor: str, detail: str) -> None:
        await self.hub.audit(kind, actor[:64] or "-", detail)
