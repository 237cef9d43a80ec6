"""Sign in (password + TOTP), sign out, and the landing page of each role.

The password and the one-time code are checked by :func:`cloud.users.attempt_login`
(scrypt, RFC 6238, per-user lockout across workers). On top of that a client address is
throttled here (:class:`cloud.web.store.DbLoginThrottle`), so one machine cannot walk
through many user names, and so is every user name, known or not (so "locked" does not
tell an attacker that a name exists). The message names the reason (catalog
``login.<reason>``) only as far as the person proved who they are — see docs/dashboard.md, "Sign-in messages";
every attempt is audited by :mod:`cloud.users` (``admin.login`` / ``admin.login_failed``). A successful
login gets a new session id (no fixation) carrying the user's most powerful role
(admin > integration > clinic_staff > auditor).
"""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cloud.users import accounts as users
from cloud.users import sessions as user_sessions
from cloud.web.shell import ADMIN, AUDITOR, INTEGRATION, LOGIN, PREFIX, RENDER, db_of, guard, page
from cloud.web.store import DbLoginThrottle
from protocol.ids import now_ms
from webui.security import sign_in, sign_out

HOME = {ADMIN: f"{PREFIX}/admin", INTEGRATION: f"{PREFIX}/dashboard", AUDITOR: f"{PREFIX}/admin/audit"}


def _next(value: object) -> str:
    """Only a path inside the pages (no open redirect)."""
    text = str(value or "")
    return text if text.startswith(f"{PREFIX}/") and "//" not in text and "\\" not in text else f"{PREFIX}/"


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


async def login_form(request: Request) -> Response:
    """GET /ui/login."""
    return page(request, "login.html", {"totp": True, "action": LOGIN, "next": _next(request.query_params.get("next"))})


async def login(request: Request) -> Response:
    """POST /ui/login: user, password, totp, next."""
    form = await request.form()
    name, password, code = (str(form.get(k, "")).strip() for k in ("user", "password", "totp"))
    lang = RENDER.language(request)
    throttle: DbLoginThrottle = request.scope["state"]["login_throttle"]
    keys = (f"ip:{_client(request)}", f"user:{name.lower()[:64]}")
    ctx = {"totp": True, "action": LOGIN, "next": _next(form.get("next"))}
    wait = await throttle.locked(*keys)
    if wait > 0:
        ctx["error"] = RENDER.catalog.t("login.locked", lang, minutes=math.ceil(wait / 60))
        return page(request, "login.html", ctx, status_code=429)
    cloud = request.app.state.cloud
    outcome = await users.attempt_login(db_of(request), cloud.ingestor.at_rest, name, password, code,
                                        source=_client(request),
                                        password_max_age_ms=cloud.config.web.password_max_age_days * 86_400_000)
    if outcome.user is None:
        await throttle.failure(*keys)
        # the attempt that locks says so, for an account and an unknown name alike (the same answer for both)
        wait_ms = max((outcome.locked_until_ms or 0) - now_ms() if outcome.reason == "locked" else 0,
                      await throttle.locked(*keys) * 1000)
        if wait_ms > 0:
            ctx["error"] = RENDER.catalog.t("login.locked", lang, minutes=math.ceil(wait_ms / 60000))
            return page(request, "login.html", ctx, status_code=429)
        ctx["error"] = RENDER.catalog.t(f"login.{outcome.reason}", lang)
        return page(request, "login.html", ctx, status_code=401)
    await throttle.success(*keys)
    await sign_in(request, outcome.user.username, outcome.user.role, outcome.user.session_version)
    return RedirectResponse(_next(form.get("next")), 303)


async def logout(request: Request) -> Response:
    """POST /ui/logout (CSRF-checked like every form): signs the user out everywhere (every
    page and bearer session of theirs ends: :func:`cloud.users.sessions.logout`)."""
    session = request.scope["state"]["session"]
    if session.user:
        await user_sessions.logout(db_of(request), session.user, source=_client(request))
    await sign_out(request)
    return RedirectResponse(LOGIN, 303)


@guard(ADMIN, INTEGRATION, AUDITOR, "clinic_staff")
async def home(request: Request) -> Response:
    """GET /ui/: the signed-in user's main screen."""
    role = request.scope["state"]["session"].role
    target = HOME.get(role)
    if target:
        return RedirectResponse(target, 303)
    return page(request, "home.html")


def routes() -> list[Route]:
    """Sign-in routes and the landing page."""
    return [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", home),
    ]
