"""A started hub (no web server of its own) with one staff user, and its web app over httpx/ASGI."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.daemon import Hub
from edge.web.app import build_app
from provisioning.auth import hash_password
from tests.edge.conftest import make_hub_dir
from tests.edge.hubkit import started
from tests.support.refcloud import RefCloud

PIN = "246810"
#: one BP monitor (never reachable here: readings are fed to the writer) and a card reader
STATIONS = ('[[stations]]\nid = "room-1"\nname = "血压 1"\n'
            '[[stations.devices]]\nid = "bp-1"\ndriver = "test-line"\naddress = "127.0.0.1"\nport = 9\n'
            '[[stations]]\nid = "room-2"\n')


def web_section(extra: str = "") -> str:
    """``[web]`` settings for a test hub: one staff user ``nurse`` with PIN 246810."""
    return (f'secure_cookie = false\nkiosk_summary_s = 30\n{extra}\n'
            f'[[web.users]]\nname = "nurse"\nsecret_hash = "{hash_password(PIN, log_n=10)}"\n')


def hub_toml(base: Path, cloud: RefCloud, web_extra: str = "") -> Path:
    """hub.toml of a test hub with the stations above and staff sign-in."""
    path = make_hub_dir(base, cloud, extra='plugins = ["tests.support.hubdriver"]', stations=STATIONS)
    text = path.read_text(encoding="utf-8").replace('port = 0\n', 'port = 0\n' + web_section(web_extra), 1)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
async def web_hub(tmp_path: Path, refcloud: RefCloud) -> AsyncIterator[tuple[Hub, Any]]:
    """A running hub and its ASGI app (the kiosk's feed is wired, its auto-finish loop not)."""
    hub = await started(hub_toml(tmp_path / "hub", refcloud))
    app = build_app(hub)
    try:
        yield hub, app
    finally:
        hub.kiosk.stop()
        await hub.stop()


def client(app: Any) -> httpx.AsyncClient:
    """An httpx client talking to ``app`` in-process (no streaming: not for SSE)."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub")


def csrf_from(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


async def sign_in(c: httpx.AsyncClient, user: str = "nurse", pin: str = PIN) -> str:
    """Sign in; returns the CSRF token of the signed-in session."""
    token = csrf_from((await c.get("/login")).text)
    r = await c.post("/login", data={"user": user, "password": pin, "csrf_token": token})
    assert r.status_code == 303, r.text
    return csrf_from((await c.get("/")).text)
