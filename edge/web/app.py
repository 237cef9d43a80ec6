"""The hub's Starlette application and its route table.

Who may reach what (checked by ``tests/edge/web/test_routes.py`` over :func:`routes`):

| path | who |
|---|---|
| ``/kiosk/<station>``, ``.../events``, ``POST .../finish`` | anyone on the LAN (the kiosk; finish is CSRF-checked) |
| ``/login``, ``POST /logout``, ``/static/...`` | anyone |
| ``/``, ``/lists``, ``/events``, ``POST /readings/bind``, ``POST /sessions/open`` and ``.../close`` | signed-in staff |
| ``/api/...`` | signed-in staff, or the console token of ``mchub edge status`` |

Every request outside ``/static`` passes :class:`webui.security.WebSecurity`: a
server-side session (cookie ``HttpOnly; SameSite=Strict``, ``Secure`` unless
``[web] secure_cookie = false``), idle timeout ``[web] idle_timeout_s``, a CSRF token
on every POST, and the security headers.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from edge.hub_view import HubView
from edge.status import api_routes
from edge.web import LOCALES, STATIC, TEMPLATES
from edge.web.auth import STAFF, ConsoleToken, StaffLogin, write_console_token
from edge.web.kiosk import Kiosk
from edge.web.statuspage import StatusPage
from webui.body_limit import BodyLimit
from webui.render import Renderer, static_mount
from webui.security import WebSecurity, require
from webui.sessions import MemorySessionStore

#: path prefixes reachable without signing in
PUBLIC = ("/kiosk/", "/login", "/logout", "/static/")


def routes(hub: HubView, renderer: Renderer, login: StaffLogin | None = None) -> tuple[list[BaseRoute], Kiosk]:
    """Every route of the hub (and the kiosk, which the hub feeds)."""
    kiosk = Kiosk(hub, renderer)
    status = StatusPage(hub, renderer, kiosk.stopping)
    login = login or StaffLogin(hub, renderer)
    staff = require(STAFF)
    table: list[BaseRoute] = [
        Route("/", staff(status.page)),
        Route("/lists", staff(status.lists)),
        Route("/events", staff(status.events)),
        Route("/readings/bind", staff(status.bind), methods=["POST"]),
        Route("/sessions/open", staff(status.open_session), methods=["POST"]),
        Route("/sessions/close", staff(status.close_visit), methods=["POST"]),
        Route("/dead-letters/resend", staff(status.resend_dead_letter), methods=["POST"]),
        Route("/dead-letters/dismiss", staff(status.dismiss_dead_letter), methods=["POST"]),
        Route("/login", login.form, methods=["GET"]),
        Route("/login", login.login, methods=["POST"]),
        Route("/logout", login.logout, methods=["POST"]),
        Route("/kiosk/{station}", kiosk.page),
        Route("/kiosk/{station}/events", kiosk.events),
        Route("/kiosk/{station}/finish", kiosk.finish_post, methods=["POST"]),
        *api_routes(hub),
        static_mount(),
        Mount("/static/hub", app=StaticFiles(directory=str(STATIC)), name="hub-static"),
    ]
    return table, kiosk


def build_app(hub: HubView) -> Any:
    """The ASGI application served by the hub; also starts the kiosk's feed from the hub."""
    renderer = Renderer(template_dirs=[TEMPLATES], locale_dirs=[LOCALES])
    login = StaffLogin(hub, renderer)
    table, kiosk = routes(hub, renderer, login)
    inner = Starlette(routes=table)
    web = hub.cfg.web
    secured = WebSecurity(inner, MemorySessionStore(), idle_timeout=web.idle_timeout_s,
                          secure_cookie=web.secure_cookie, exempt=("/static/",), user_version=login.user_version)
    hub.kiosk = kiosk
    hub.staff_login = login
    hub.commit_listeners.append(kiosk.on_commit)
    hub.live_listeners.append(kiosk.on_live)
    guarded = ConsoleToken(secured, inner, write_console_token(hub.cfg.data_dir))
    return BodyLimit(guarded, default=web.max_body_bytes)  # every body capped before it is read
