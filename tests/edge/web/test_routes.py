"""Every route of the hub refuses a request without a session, except the kiosk, static files and login;
every POST refuses a missing CSRF token, signed in or not."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from starlette.routing import Mount, Route

from edge.web.app import PUBLIC, routes
from tests.edge.web.conftest import client, sign_in
from webui.render import Renderer


def _table() -> list[tuple[str, str]]:
    """(method, concrete path) for every route, built from the real route table."""
    hub: Any = SimpleNamespace(cfg=None)  # the table only keeps references; no handler runs here
    table, _ = routes(hub, Renderer())
    out = []
    for r in table:
        if isinstance(r, Route):
            path = r.path.replace("{station}", "room-1").replace("{uid}", "0190a1b2-0000-7000-8000-000000000000")
            out += [(m, path) for m in sorted(r.methods or ()) if m != "HEAD"]
        elif isinstance(r, Mount):
            out.append(("GET", r.path + ("/mchub.css" if r.path.endswith("webui") else "/kiosk.css")))
    return out


ROUTES = _table()
PUBLIC_ROUTES = {(m, p) for m, p in ROUTES if p.startswith(PUBLIC)}


def test_the_public_routes_are_exactly_kiosk_login_and_static() -> None:
    assert {p for _, p in PUBLIC_ROUTES} == {"/kiosk/room-1", "/kiosk/room-1/events", "/kiosk/room-1/finish",
                                             "/login", "/logout", "/static/webui/mchub.css", "/static/hub/kiosk.css"}
    assert len(ROUTES) >= 17


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r not in PUBLIC_ROUTES])
async def test_refused_without_a_session(web_hub: tuple[Any, Any], method: str, path: str) -> None:
    _, app = web_hub
    async with client(app) as c:
        page = await c.get("/login")  # an anonymous session with a valid CSRF token
        token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        r = await c.request(method, path, headers={"X-CSRF-Token": token})
    assert r.status_code in (401, 303), (method, path, r.status_code)
    if r.status_code == 303:
        assert r.headers["location"].startswith("/login?next=")
    assert "王" not in r.text and "room-1" not in r.text.replace(path, "")


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[0] == "POST"])
async def test_post_without_csrf_is_refused(web_hub: tuple[Any, Any], method: str, path: str) -> None:
    _, app = web_hub
    async with client(app) as c:
        await sign_in(c)
        r = await c.post(path, data={"station_id": "room-1"})
        assert r.status_code == 403, (path, r.status_code)
        r = await c.post(path, data={"station_id": "room-1", "csrf_token": "forged"})
        assert r.status_code == 403, (path, r.status_code)


async def test_console_token_is_only_for_the_api(web_hub: tuple[Any, Any]) -> None:
    hub, app = web_hub
    token = (hub.cfg.data_dir / "console.token").read_text()
    assert (hub.cfg.data_dir / "console.token").stat().st_mode & 0o077 == 0
    async with client(app) as c:
        bearer = {"Authorization": f"Bearer {token}"}
        assert (await c.get("/api/status", headers=bearer)).status_code == 200
        assert (await c.get("/", headers=bearer)).status_code == 303  # pages need a person
        assert (await c.get("/api/status", headers={"Authorization": "Bearer wrong"})).status_code == 401
