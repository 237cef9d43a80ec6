"""Every page is behind sessions, CSRF and role checks; brute force is throttled."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from webui.render import Renderer, static_mount
from webui.security import LoginThrottle, WebSecurity, require, session_of, sign_in, sign_out
from webui.sessions import MemorySessionStore

USERS = {"nurse": ("pw-nurse", "staff"), "boss": ("pw-boss", "admin")}


def make_app(store: MemorySessionStore, throttle: LoginThrottle, idle: float = 900.0, secure: bool = False):  # type: ignore[no-untyped-def]
    renderer = Renderer()

    async def login_form(request: Request) -> Response:
        return renderer.page(request, "login.html", {"next": request.query_params.get("next", "/")})

    async def login(request: Request) -> Response:
        form = await request.form()
        user, password = str(form.get("user")), str(form.get("password"))
        if throttle.locked(user):
            return PlainTextResponse("locked", 429)
        if USERS.get(user, ("", ""))[0] != password:
            throttle.failure(user)
            return PlainTextResponse("wrong", 401)
        throttle.success(user)
        await sign_in(request, user, USERS[user][1])
        return RedirectResponse(str(form.get("next", "/")), 303)

    async def logout(request: Request) -> Response:
        await sign_out(request)
        return RedirectResponse("/login", 303)

    @require("staff", "admin")
    async def status(request: Request) -> Response:
        return renderer.page(request, "login.html", {"error": "status page"}, patient_data=True)

    @require("admin")
    async def admin_api(request: Request) -> Response:
        return JSONResponse({"ok": True, "user": session_of(request).user})

    async def ingest(request: Request) -> Response:  # machine endpoint: exempt, authenticated otherwise
        return PlainTextResponse("ingested")

    return Starlette(
        routes=[Route("/login", login_form), Route("/login", login, methods=["POST"]),
                Route("/logout", logout, methods=["POST"]), Route("/", status),
                Route("/api/admin", admin_api, methods=["GET", "POST"]),
                Route("/api/v1/batches", ingest, methods=["POST"]), static_mount()],
        middleware=[Middleware(WebSecurity, store=store, idle_timeout=idle, secure_cookie=secure,
                               exempt=("/api/v1/batches",))],
    )


def client(app) -> httpx.AsyncClient:  # type: ignore[no-untyped-def]
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


async def signed_in(c: httpx.AsyncClient, user: str = "nurse") -> str:
    token = csrf_from((await c.get("/login")).text)
    r = await c.post("/login", data={"user": user, "password": USERS[user][0], "csrf_token": token})
    assert r.status_code == 303
    return csrf_from((await c.get("/")).text)


async def test_anonymous_pages_redirect_and_apis_401() -> None:
    async with client(make_app(MemorySessionStore(), LoginThrottle())) as c:
        r = await c.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/"
        assert (await c.get("/api/admin")).status_code == 401


async def test_post_without_csrf_is_refused_even_for_login() -> None:
    async with client(make_app(MemorySessionStore(), LoginThrottle())) as c:
        await c.get("/login")
        r = await c.post("/login", data={"user": "nurse", "password": "pw-nurse"})
        assert r.status_code == 403
        r = await c.post("/login", data={"user": "nurse", "password": "pw-nurse", "csrf_token": "forged"})
        assert r.status_code == 403


async def test_login_rotates_the_session_and_roles_are_enforced() -> None:
    store = MemorySessionStore()
    async with client(make_app(store, LoginThrottle())) as c:
        await c.get("/login")
        before = c.cookies.get("mchub_session")
        token = await signed_in(c)
        assert c.cookies.get("mchub_session") != before
        assert before not in store.sessions  # the anonymous session is gone: no fixation
        page = await c.get("/")
        assert page.status_code == 200 and "nurse" in page.text and 'class="watermark"' in page.text
        assert (await c.get("/api/admin")).status_code == 403  # staff may not reach admin routes
        assert (await c.post("/api/admin", headers={"X-CSRF-Token": token})).status_code == 403
        r = await c.post("/logout", data={"csrf_token": token})
        assert r.status_code == 303
        assert (await c.get("/")).status_code == 303


async def test_admin_reaches_admin_api_with_csrf_header() -> None:
    async with client(make_app(MemorySessionStore(), LoginThrottle())) as c:
        token = await signed_in(c, "boss")
        assert (await c.post("/api/admin")).status_code == 403  # no token
        r = await c.post("/api/admin", headers={"X-CSRF-Token": token})
        assert r.json() == {"ok": True, "user": "boss"}


async def test_idle_sessions_end() -> None:
    store = MemorySessionStore()
    async with client(make_app(store, LoginThrottle(), idle=60)) as c:
        await signed_in(c)
        for s in store.sessions.values():
            s.last_seen -= 120
        assert (await c.get("/")).status_code == 303


async def test_repeated_failures_lock_the_account() -> None:
    throttle = LoginThrottle(max_failures=3)
    async with client(make_app(MemorySessionStore(), throttle)) as c:
        token = csrf_from((await c.get("/login")).text)
        codes = [(await c.post("/login", data={"user": "nurse", "password": "guess", "csrf_token": token})).status_code
                 for _ in range(3)]
        assert codes == [401, 401, 401]
        r = await c.post("/login", data={"user": "nurse", "password": "pw-nurse", "csrf_token": token})
        assert r.status_code == 429  # even the right password waits out the lock


async def test_security_headers_secure_cookie_and_exempt_machine_routes() -> None:
    async with client(make_app(MemorySessionStore(), LoginThrottle(), secure=True)) as c:
        r = await c.get("/login")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
        cookie = r.headers["set-cookie"]
        assert all(a in cookie for a in ("HttpOnly", "SameSite=Strict", "Secure"))
        assert (await c.post("/api/v1/batches", content=b"x")).text == "ingested"


@pytest.mark.parametrize("path", ["/static/webui/../security.py", "/static/webui/%2e%2e/security.py"])
async def test_static_files_refuse_path_traversal(path: str) -> None:
    async with client(make_app(MemorySessionStore(), LoginThrottle())) as c:
        assert (await c.get("/static/webui/mchub.css")).status_code == 200
        assert (await c.get(path)).status_code == 404


async def test_language_switch_is_remembered() -> None:
    async with client(make_app(MemorySessionStore(), LoginThrottle())) as c:
        assert "登录" in (await c.get("/login")).text
        assert "Sign in" in (await c.get("/login?lang=en")).text
        assert "Sign in" in (await c.get("/login")).text  # cookie remembers


async def test_a_flood_of_anonymous_visits_does_not_sign_staff_out() -> None:
    from webui.sessions import Session

    store = MemorySessionStore(limit=10)
    nurse = Session.new("nurse", "staff", now=1.0)  # seen long before the flood
    await store.put(nurse)
    for i in range(50):
        await store.put(Session.new("", "anonymous", now=2.0 + i))
    assert await store.get(nurse.id) is nurse and len(store.sessions) == 10
