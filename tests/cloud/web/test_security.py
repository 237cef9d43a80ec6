"""Every cloud page is refused without a session and to the wrong role; CSRF; lockout; sessions.

The route table is walked: a page added later without a role check fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud import web
from cloud.web.shell import ROLES
from tests.cloud.support import make_cloud
from tests.cloud.web.support import PASSWORD, WEB, Cloud, csrf, csrf_from, running, sign_in

PUBLIC = {("/login", "GET"), ("/login", "POST"), ("/logout", "POST")}
PARAMS = {"{hub_id}": "H1", "{name}": "someone"}


def _url(path: str) -> str:
    for k, v in PARAMS.items():
        path = path.replace(k, v)
    return "/ui" + path


GUARDED = [(r.path, m, r.endpoint) for r in web.page_routes() for m in sorted(r.methods or ()) if m != "HEAD"
           and (r.path, m) not in PUBLIC]


@pytest.fixture
async def cloud(tmp_path: Path):  # type: ignore[no-untyped-def]
    cfg, _ = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    async with running(cfg) as c:
        yield c


def test_every_page_declares_its_roles() -> None:
    assert GUARDED, "the route table is empty"
    for path, method, endpoint in GUARDED:
        roles = getattr(endpoint, "roles", None)
        assert roles and roles <= set(ROLES), f"{method} {path} has no role check"


async def test_every_route_refuses_a_request_without_a_session(cloud: Cloud) -> None:
    async with cloud.client() as c:
        token = await csrf(c)  # an anonymous session with a valid CSRF token: only the role check stops it
        for path, method, _ in GUARDED:
            r = await c.request(method, _url(path), data={"csrf_token": token} if method == "POST" else None)
            assert r.status_code == 303 and r.headers["location"].startswith("/ui/login"), (method, path)
            assert "Location" not in r.text


async def test_every_route_refuses_the_wrong_role(cloud: Cloud) -> None:
    clients = {}
    for role in ROLES:
        secret = await cloud.user(f"u-{role.replace('_', '-')}", role)
        c = cloud.client()
        await sign_in(c, f"u-{role.replace('_', '-')}", secret)
        clients[role] = (c, await csrf(c))
    try:
        for path, method, endpoint in GUARDED:
            for role, (c, token) in clients.items():
                if role in endpoint.roles:
                    continue
                r = await c.request(method, _url(path), data={"csrf_token": token} if method == "POST" else None)
                assert r.status_code == 403, (role, method, path, r.status_code)
        # and the right role gets through (a staff user never reaches admin routes, an admin does)
        admin, _ = clients["admin"]
        assert (await admin.get("/ui/admin")).status_code == 200
        assert (await clients["clinic_staff"][0].get("/ui/admin")).status_code == 403
    finally:
        for c, _ in clients.values():
            await c.aclose()


async def test_a_form_post_without_csrf_token_is_refused(cloud: Cloud) -> None:
    secret = await cloud.user("root", "admin")
    async with cloud.client() as c:
        await sign_in(c, "root", secret)
        r = await c.post("/ui/admin/sites", data={"site_id": "s9", "name": "x"})
        assert r.status_code == 403
        r = await c.post("/ui/admin/sites", data={"site_id": "s9", "name": "x", "csrf_token": "forged"})
        assert r.status_code == 403
        assert not await cloud.sql("SELECT 1 FROM sites WHERE site_id = 's9'")
        r = await c.post("/ui/admin/sites", data={"site_id": "s9", "name": "x", "csrf_token": await csrf(c)})
        assert r.status_code == 303 and await cloud.sql("SELECT 1 FROM sites WHERE site_id = 's9'")
        # the login form itself needs the token
        async with cloud.client() as anon:
            await anon.get("/ui/login")
            r = await anon.post("/ui/login", data={"user": "root", "password": PASSWORD, "totp": "000000"})
            assert r.status_code == 403


async def test_repeated_failures_lock_the_user_then_the_client_address(cloud: Cloud) -> None:
    secret = await cloud.user("alice", "integration")
    async with cloud.client() as c:
        for i in range(5):  # the fifth failure locks the account
            r = await sign_in(c, "alice", secret, password="wrong-password-1", expect=401 if i < 4 else 429)
            assert ("错误" if i < 4 else "分钟") in r.text
        r = await sign_in(c, "alice", secret, expect=429)  # right password and code, but locked
        assert "分钟" in r.text
        # the address is throttled too (at 4x the per-user limit): walking through user names stops
        statuses = [(await sign_in(c, f"nobody{i}", "A" * 32, expect=None)).status_code
                    for i in range(16)]
        assert statuses.count(401) == 14 and statuses[-2:] == [429, 429]  # 6 + 14 failures = 20: locked
        other = await cloud.user("bob", "integration")
        r = await sign_in(c, "bob", other, expect=429)
    rows = await cloud.sql("SELECT reason FROM audit_log WHERE action = 'admin.login_failed' ORDER BY id")
    assert [r["reason"] for r in rows][:5] == ["bad_credentials"] * 4 + ["locked"]


async def test_session_cookie_flags_and_login_rotates_the_session(cloud: Cloud, tmp_path: Path) -> None:
    secret = await cloud.user("carol", "integration")
    async with cloud.client() as c:
        r = await c.get("/ui/login")
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        before = c.cookies.get("mchub_session")
        await sign_in(c, "carol", secret)
        assert c.cookies.get("mchub_session") != before
        stored = await cloud.sql("SELECT id_hash FROM web_sessions")
        assert before not in {r["id_hash"] for r in stored}  # only digests are stored
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
    cfg, _ = make_cloud(tmp_path / "other", f"sqlite:///{tmp_path / 'other' / 'c.db'}")
    async with running(cfg) as secure, secure.client() as c:
        assert "; Secure" in (await c.get("/ui/login")).headers["set-cookie"]  # the default


async def test_idle_timeout_and_disabled_account_end_the_session(cloud: Cloud) -> None:
    secret = await cloud.user("dave", "integration")
    async with cloud.client() as c:
        await sign_in(c, "dave", secret)
        assert (await c.get("/ui/dashboard")).status_code == 200
        await cloud.sql("UPDATE web_sessions SET last_seen_ms = last_seen_ms - 901000")  # idle 15 min
        assert (await c.get("/ui/dashboard")).status_code == 303
    secret = await cloud.user("erin", "integration")
    async with cloud.client() as c:
        await sign_in(c, "erin", secret)
        await cloud.sql("UPDATE users SET active = $1 WHERE username = 'erin'", False)
        assert (await c.get("/ui/dashboard")).status_code == 303


async def test_logout_ends_the_session(cloud: Cloud) -> None:
    secret = await cloud.user("fay", "admin")
    async with cloud.client() as c:
        await sign_in(c, "fay", secret)
        token = csrf_from((await c.get("/ui/admin")).text)
        assert (await c.post("/ui/logout", data={"csrf_token": token})).status_code == 303
        assert (await c.get("/ui/admin")).status_code == 303


@pytest.mark.postgres
async def test_a_session_works_on_every_worker(tmp_path: Path, pg_dsn: str) -> None:
    cfg, _ = make_cloud(tmp_path / "cloud", pg_dsn, extra_toml=WEB)
    async with running(cfg) as one, running(cfg) as two:
        secret = await one.user("gus", "integration")
        async with one.client() as c:
            await sign_in(c, "gus", secret)
            cookie = c.cookies.get("mchub_session")
        async with two.client() as c:
            c.cookies.set("mchub_session", cookie)
            r = await c.get("/ui/dashboard")
            assert r.status_code == 200 and "gus" in r.text
