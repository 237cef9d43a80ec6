"""What every cloud page shares: renderer, roles, the guard, audit of views, the mount.

Pages live under ``/ui`` in a :class:`starlette.routing.Mount` that carries its own
middleware — :class:`webui.security.WebSecurity` over the database session store — so the
machine APIs next to it (``/api/v1``, ``/admin/v1``, ``/metrics``) are untouched. Every
page endpoint is declared with :func:`guard`, which records the roles it admits (the
route-table security test reads them) and wraps :func:`webui.security.require`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cloud import audit
from cloud.db.engine import Database
from cloud.web.store import DbLoginThrottle, DbSessionStore
from protocol import labresults
from protocol.logmask import mask_id_numbers
from webui.render import Renderer
from webui.security import Endpoint, require, session_of

HERE = Path(__file__).resolve().parent
PREFIX = "/ui"
LOGIN = f"{PREFIX}/login"

ADMIN, INTEGRATION, AUDITOR, STAFF = "admin", "integration", "auditor", "clinic_staff"
ROLES = (ADMIN, INTEGRATION, AUDITOR, STAFF)

RENDER = Renderer([HERE / "templates"], [HERE / "locales"])


def when(ms: int | None) -> str:
    """Local date and time of a millisecond timestamp ("-" for none)."""
    return dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def age(seconds: int | None, t: Callable[..., str]) -> str:
    """A duration for people: 42 s, 5 min, 3 h, 2 d (translated units)."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return t(f"age.{unit}", n=seconds // size)
    return t("age.s", n=seconds)


RENDER.env.filters.update(when=when, age=age, masked=mask_id_numbers,  # masked: ID numbers in free text
                          unit=labresults.unit_symbol)  # unit: UCUM as people read it


def guard(*roles: str) -> Callable[[Endpoint], Endpoint]:
    """Only signed-in users with one of ``roles``; the roles are kept on the endpoint."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        guarded = require(*roles, login_path=LOGIN)(endpoint)
        guarded.roles = frozenset(roles)  # type: ignore[attr-defined]
        return guarded

    return decorate


def db_of(request: Request) -> Database:
    """The worker's database."""
    db: Database = request.app.state.cloud.db
    return db


def user_of(request: Request) -> str:
    """The signed-in user's name."""
    return session_of(request).user


def actor(request: Request) -> str:
    """How the audit log names the signed-in user."""
    return f"web:{user_of(request)}"


async def audit_view(request: Request, what: str, *, subject_id: int | None = None, hub_id: str | None = None,
                     detail: dict[str, object] | None = None) -> None:
    """Record that the signed-in user looked at patient data (``view.<what>``)."""
    async with db_of(request).transaction() as tx:
        await audit.write(tx, actor=actor(request), action=f"view.{what}", outcome="ok", subject_id=subject_id,
                          hub_id=hub_id, detail={"path": request.url.path, **(detail or {})})


def page(request: Request, template: str, context: dict[str, Any] | None = None, *, status_code: int = 200,
         patient_data: bool = False, nav: str = "") -> Response:
    """Render a cloud page (the shared layout, navigation, watermark when ``patient_data``)."""
    ctx = {"prefix": PREFIX, "nav": nav, **(context or {})}
    return RENDER.page(request, template, ctx, status_code=status_code, patient_data=patient_data)


def flash_param(text: str) -> str:
    """``text`` for an ``?ok=``/``?error=`` redirect: short, ID numbers masked, URL-quoted."""
    return quote(mask_id_numbers(text[:200]), safe="")


class BindDatabase:
    """ASGI middleware: hand the worker's database to the session store and throttle on first use."""

    def __init__(self, app: ASGIApp, store: DbSessionStore, throttle: DbLoginThrottle) -> None:
        self.app, self.store, self.throttle = app, store, throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.store.db is None and scope["type"] == "http":
            db = scope["app"].state.cloud.db
            self.store.bind(db)
            self.throttle.bind(db)
        scope.setdefault("state", {})["login_throttle"] = self.throttle
        await self.app(scope, receive, send)
