"""Helpers for the cloud page tests: a running app (lifespan included), accounts, sign-in."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.applications import Starlette

from cloud import users
from cloud.app import CloudState, build_app
from cloud.config import CloudConfig
from provisioning import totp

PASSWORD = "Correct-Horse-9!"
WEB = "[web]\nsecure_cookie = false\n"  #: tests talk plain HTTP to the app


@dataclass
class Cloud:
    """A started cloud app and its state."""

    app: Starlette
    state: CloudState

    def client(self) -> httpx.AsyncClient:
        """A fresh client (own cookie jar) talking to the app in-process."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://cloud")

    async def user(self, name: str, *roles: str) -> str:
        """Create an account with a second factor; returns its TOTP secret."""
        await users.create_user(self.state.db, name, PASSWORD, roles=roles, actor="test")
        secret, _ = await users.enable_totp(self.state.db, self.state.ingestor.at_rest, name, actor="test")
        return secret

    async def sql(self, query: str, *args: Any) -> list[Any]:
        """Rows of one statement."""
        async with self.state.db.transaction() as tx:
            return await tx.fetch(query, *args)


@contextlib.asynccontextmanager
async def running(cfg: CloudConfig) -> AsyncIterator[Cloud]:
    """The app with its lifespan (database, migrations, ORM) running."""
    app = build_app(cfg)
    async with app.router.lifespan_context(app):
        yield Cloud(app, app.state.cloud)


def code(secret: str, offset_steps: int = 0) -> str:
    """The current one-time code (``offset_steps`` 30-s steps away)."""
    return totp.totp(totp.decode_secret(secret), time.time() + 30 * offset_steps)


def csrf_from(html: str) -> str:
    """The CSRF token of a rendered form."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


async def sign_in(c: httpx.AsyncClient, name: str, secret: str, *, password: str = PASSWORD,
                  expect: int | None = 303) -> httpx.Response:
    """Post the login form like a browser (CSRF token from the form); ``expect=None``: any status."""
    token = csrf_from((await c.get("/ui/login")).text)
    r = await c.post("/ui/login", data={"user": name, "password": password, "totp": code(secret),
                                        "csrf_token": token, "next": "/ui/"})
    assert expect is None or r.status_code == expect, r.text[:500]
    return r


async def csrf(c: httpx.AsyncClient) -> str:
    """The CSRF token of the client's current session."""
    return csrf_from((await c.get("/ui/login")).text)
