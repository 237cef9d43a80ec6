"""Issue 17 finding 3: a role change, password reset, disable or logout ends the open sessions.

The probe demoted an admin to auditor with `mchub cloud user roles`; the admin's open web page
still created a site afterwards, and `mchub cloud user passwd` ended the API token but not the
web session. Here the cloud serves over real HTTP (uvicorn on loopback), the changes are made
by the real `mchub cloud user` command in its own process, and the next request of each open
session (web page and API bearer token) is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from provisioning import totp
from provisioning.client import HttpClient
from provisioning.errors import ClientError
from tests.cloud.fleet_support import PASSWORD, ProvCloud, add_user, call, make_prov_cloud
from tests.cloud.support import serving
from tests.cloud.web.support import WEB, csrf, csrf_from

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def prov(tmp_path: Path) -> ProvCloud:
    return make_prov_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)


def user_cli(prov: ProvCloud, *args: str) -> None:
    """`mchub cloud user ARGS` as its own process, like an admin on the server."""
    done = subprocess.run([sys.executable, "-m", "mchub", "cloud", "user", *args, "--config", str(prov.cfg.path)],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stdout + done.stderr


def code(prov: ProvCloud, user: str, steps: int) -> str:
    return totp.totp(totp.decode_secret(prov.secrets[user]), time.time() + 30 * steps)


async def api_session(prov: ProvCloud, url: str, user: str, step: int = -1) -> HttpClient:
    """An API bearer token of ``user``."""
    answer = await asyncio.to_thread(HttpClient(url).request, "POST", "/api/v1/admin/login",
                                     {"username": user, "password": PASSWORD, "code": code(prov, user, step)})
    return HttpClient(url, bearer=answer["token"])


async def web_session(prov: ProvCloud, url: str, user: str, step: int = 0) -> httpx.AsyncClient:
    """A browser signed in as ``user``."""
    web = httpx.AsyncClient(base_url=url)
    token = csrf_from((await web.get("/ui/login")).text)
    r = await web.post("/ui/login", data={"user": user, "password": PASSWORD, "totp": code(prov, user, step),
                                          "csrf_token": token, "next": "/ui/admin"})
    assert r.status_code == 303, r.text[:300]
    return web


async def both_sessions(prov: ProvCloud, url: str, user: str) -> tuple[httpx.AsyncClient, HttpClient]:
    """A signed-in web page and an API bearer token of ``user`` (two one-time codes: no replay)."""
    api = await api_session(prov, url, user, -1)
    return await web_session(prov, url, user, 0), api


async def add_site(web: httpx.AsyncClient, site: str, token: str | None = None) -> httpx.Response:
    """POST the admin page's add-site form (with the page's CSRF token, or a fresh one)."""
    return await web.post("/ui/admin/sites", data={"site_id": site, "name": site,
                                                   "csrf_token": token or await csrf(web)})


async def api_refused(api: HttpClient, method: str, path: str, body: object = None) -> int:
    with pytest.raises(ClientError) as err:
        await call(api, method, path, body)
    return err.value.http_status


async def test_demotion_ends_the_open_admin_session_web_and_api(prov: ProvCloud) -> None:
    await add_user(prov, "boss", "admin")
    await add_user(prov, "root", "admin")
    async with serving(prov.cfg) as url:
        web, api = await both_sessions(prov, url, "boss")
        async with contextlib.aclosing(web):
            assert (await add_site(web, "before")).status_code == 303  # an admin may
            await call(api, "POST", "/api/v1/admin/sites", {"site_id": "before-api", "name": "x"})
            open_page_token = await csrf(web)
            user_cli(prov, "roles", "boss", "--role", "auditor")
            r = await add_site(web, "after", open_page_token)  # the probe: the open page creates a site
            assert r.status_code == 403  # the old session (and the CSRF token it issued) is gone
            r = await add_site(web, "after")  # a fresh token gets only an anonymous session
            assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
            page = await web.get("/ui/admin")
            assert page.status_code == 303 and page.headers["location"].startswith("/ui/login")
            assert await api_refused(api, "POST", "/api/v1/admin/sites", {"site_id": "after-api", "name": "x"}) == 401
            # signing in again gives the new role only
            async with contextlib.aclosing(await web_session(prov, url, "boss", 1)) as web2:
                assert (await web2.get("/ui/admin/audit")).status_code == 200
                assert (await add_site(web2, "after")).status_code == 403
            root = await api_session(prov, url, "root")
            sites = [s["site_id"] for s in (await call(root, "GET", "/api/v1/admin/sites"))["sites"]]
            assert sorted(sites) == ["before", "before-api"]


async def test_passwd_and_disable_end_the_open_web_session(prov: ProvCloud, tmp_path: Path) -> None:
    await add_user(prov, "ops", "integration")
    await add_user(prov, "root", "admin")
    (tmp_path / "pw").write_text("Another-Horse-10\n")
    async with serving(prov.cfg) as url:
        web, api = await both_sessions(prov, url, "ops")
        async with contextlib.aclosing(web):
            assert (await web.get("/ui/dashboard")).status_code == 200
            user_cli(prov, "passwd", "ops", "--password-file", str(tmp_path / "pw"))
            r = await web.get("/ui/dashboard")
            assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
            assert await api_refused(api, "GET", "/api/v1/admin/hubs") == 401
        web, api = await both_sessions(prov, url, "root")
        async with contextlib.aclosing(web):
            assert (await web.get("/ui/admin")).status_code == 200
            user_cli(prov, "disable", "root")
            assert (await web.get("/ui/admin")).status_code == 303
            assert await api_refused(api, "GET", "/api/v1/admin/hubs") == 401


async def test_a_new_second_factor_ends_the_open_sessions(prov: ProvCloud) -> None:
    await add_user(prov, "kim", "admin")
    async with serving(prov.cfg) as url:
        web, api = await both_sessions(prov, url, "kim")
        async with contextlib.aclosing(web):
            user_cli(prov, "totp", "kim")  # the phone was lost: a new one-time-code secret
            assert (await web.get("/ui/admin")).status_code == 303
            assert await api_refused(api, "GET", "/api/v1/admin/hubs") == 401


async def test_logout_ends_every_session_of_the_user(prov: ProvCloud) -> None:
    await add_user(prov, "amy", "admin")
    async with serving(prov.cfg) as url:
        web, api = await both_sessions(prov, url, "amy")
        async with contextlib.aclosing(web), httpx.AsyncClient(base_url=url, cookies=web.cookies) as copy:
            assert (await copy.get("/ui/admin")).status_code == 200  # a second browser holding the same cookie
            r = await web.post("/ui/logout", data={"csrf_token": await csrf(web)})
            assert r.status_code == 303
            assert (await copy.get("/ui/admin")).status_code == 303  # the copied cookie is dead
            assert await api_refused(api, "GET", "/api/v1/admin/hubs") == 401  # so is the bearer token
