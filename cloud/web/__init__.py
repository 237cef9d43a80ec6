"""The cloud's web pages: integration dashboard, admin console, MCH registers (issue 9).

``routes(cfg)`` returns what :func:`cloud.server.app.build_app` adds to its route list: the
shared static files and a ``/ui`` mount with its own security middleware (database
sessions shared by every worker, CSRF, idle timeout, security headers); ``/`` redirects
there. ``run_sampler`` is the background task that records the queue totals the rate charts
are drawn from. See docs/dashboard.md.
"""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from cloud.config import CloudConfig
from cloud.web import admin, auth, dashboard, messages, registers, worklist
from cloud.web.sampler import run as run_sampler
from cloud.web.shell import HERE, PREFIX, BindDatabase
from cloud.web.store import DbLoginThrottle, DbSessionStore
from webui.render import static_mount
from webui.security import WebSecurity

__all__ = ["page_routes", "routes", "run_sampler"]


def page_routes() -> list[Route]:
    """Every page route inside the mount (the security tests walk this table)."""
    return [*auth.routes(), *dashboard.routes(), *messages.routes(), *worklist.routes(), *admin.routes(),
            *registers.routes()]


async def _root(request: Request) -> Response:
    return RedirectResponse(f"{PREFIX}/", 303)


def routes(cfg: CloudConfig) -> list[BaseRoute]:
    """Routes to add to the cloud app."""
    w = cfg.web
    store = DbSessionStore()
    # per client address: several people may share one address (a clinic's NAT), so allow more; per user
    # name (known or not: the lock says nothing about whether an account exists) max_failures
    throttle = DbLoginThrottle(w.max_failures * 4, lock_s=w.lock_s, name_failures=w.max_failures)
    middleware = [Middleware(BindDatabase, store=store, throttle=throttle),
                  Middleware(WebSecurity, store=store, idle_timeout=float(w.idle_timeout_s),
                             secure_cookie=w.secure_cookie, user_version=store.user_version)]
    return [
        Route("/", _root, include_in_schema=False),
        static_mount(),
        Mount(f"{PREFIX}/static", app=StaticFiles(directory=str(HERE / "static")), name="cloud-web-static"),
        Mount(PREFIX, routes=page_routes(), middleware=middleware),
    ]
