"""Issue 17 finding 8 on the hub, against a real hub process: X-Forwarded-For is believed
only from ``[web] forwarded_allow_ips``. Behind the trusted proxy the sign-in lockout keys
on each real client; from any other address a forged header changes nothing."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from tests.edge.web.hubproc import running_hub


async def _fail_login(http: aiohttp.ClientSession, url: str, user: str, forwarded: str) -> int:
    headers = {"X-Forwarded-For": forwarded}
    async with http.get(f"{url}/login", headers=headers) as r:
        token = re.search(r'name="csrf_token" value="([^"]+)"', await r.text())
    assert token is not None
    async with http.post(f"{url}/login", data={"user": user, "password": "000000", "csrf_token": token.group(1)},
                         headers=headers, allow_redirects=False) as r:
        return r.status


def _session(source: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)),
                                 cookie_jar=aiohttp.CookieJar(unsafe=True),  # keep the session cookie of an IP host
                                 timeout=aiohttp.ClientTimeout(total=20))


async def test_the_lockout_keys_on_the_client_behind_a_trusted_proxy_only(tmp_path: Path) -> None:
    with running_hub(tmp_path / "hub", web_extra='forwarded_allow_ips = "127.0.0.2"\n') as hub:
        async with _session("127.0.0.2") as proxy:  # the trusted proxy: failures lock client A only
            a = await _until_locked(lambda i: _fail_login(proxy, hub.url, f"a{i}", "192.0.2.1"))
            b = await _fail_login(proxy, hub.url, "b0", "192.0.2.2")
        async with _session("127.0.0.3") as direct:  # not trusted: a new forged address each time is no escape
            c = await _until_locked(lambda i: _fail_login(direct, hub.url, f"c{i}", f"198.51.100.{i}"))
    assert b == 401
    assert a == c  # the same number of failures locks the untrusted address, whatever it claims


async def _until_locked(attempt: Callable[[int], Awaitable[int]]) -> int:
    """Failed sign-ins (a new user name each) until the address is locked (429); how many were 401."""
    for i in range(20):
        status = await attempt(i)
        if status == 429:
            return i
        assert status == 401, status
    raise AssertionError("20 failed sign-ins from one address never locked it")
