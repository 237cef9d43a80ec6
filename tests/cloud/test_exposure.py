"""Issue 17 findings 7, 8 and 6 (cloud side), against a real ``mchub cloud serve`` process:

* /metrics needs the bearer token of ``[http] metrics_token_file`` (7); the nginx example
  does not proxy it; openapi.json lists every route of the app, STOW-RS included;
* X-Forwarded-For counts only from ``[http] forwarded_allow_ips`` (8): behind the trusted
  proxy the sign-in throttle keys on each real client; from any other address a forged
  header changes nothing;
* the workers run the guarded protocol (6): a slowloris flood from one address is cut at
  the per-address limit and the header deadline while another address is served.

No wall-clock bound (issue 21): "served during the flood" is an ordering (answered while the
8 dripping connections within the limit were still held), and "cut at the header deadline" is
causal (the audit tally gives each closed connection's reason; a deadline that the dripping
bytes moved would never close them, and the wait for that fails only as a hang).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sqlite3
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from starlette.routing import Route

from cloud.server.app import build_app
from cloud.server.openapi import document
from tests.cloud.support import make_cloud, worker_process
from tests.support.services import free_port
from tests.support.waiting import HANG_S, until

ROOT = Path(__file__).resolve().parents[2]
ATTEMPTS = 200  #: far past any budget: only a forged header that counted could reach it
HEADER_S = 10  #: the held connections outlive the other address's request by this much: an ordering margin
HTTP = ('[http]\nforwarded_allow_ips = "127.0.0.2"\nmetrics_token_file = "metrics.token"\n'
        f"max_connections_per_ip = 8\nheader_timeout_s = {HEADER_S}\n")


def _session(source: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)),
                                 timeout=aiohttp.ClientTimeout(total=HANG_S))


async def _login(http: aiohttp.ClientSession, url: str, forwarded: str, user: str) -> int:
    async with http.post(f"{url}/api/v1/admin/login", json={"username": user, "password": "y", "code": "0"},
                         headers={"X-Forwarded-For": forwarded}) as r:
        return r.status


async def _until_refused(attempt: Callable[[int], Awaitable[int]]) -> int:
    """Failed sign-ins (a new user name each) until the address is refused (429); how many were 401.

    How many depends on the clock as well (the per-address limit is a sliding minute, and a
    sign-in costs a password hash: on a loaded machine early attempts leave the minute before the
    last), so callers compare "refused at all", never the count."""
    for i in range(ATTEMPTS):
        status = await attempt(i)
        if status == 429:
            return i
        assert status == 401, status
    raise AssertionError(f"{ATTEMPTS} failed sign-ins from one address were never throttled")


async def test_metrics_token_forwarded_for_and_connection_limits_of_a_served_cloud(tmp_path: Path) -> None:
    cfg, _ = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", HTTP)
    (tmp_path / "cloud" / "metrics.token").write_text("scrape-me\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with worker_process(cfg, port, tmp_path / "cloud.log") as worker:
        # 7: /metrics
        async with _session("127.0.0.1") as http:
            for headers, want in (({}, 401), ({"Authorization": "Bearer wrong"}, 401),
                                  ({"Authorization": "Bearer scrape-me"}, 200)):
                async with http.get(f"{url}/metrics", headers=headers) as r:
                    assert r.status == want, headers
                    if want == 200:
                        assert "mchub_hub_queue_depth" in await r.text()
        # 8: through the trusted proxy (127.0.0.2) each client has its own sign-in budget
        async with _session("127.0.0.2") as proxy:
            spent = await _until_refused(lambda i: _login(proxy, url, "203.0.113.1", f"a{i}"))
            assert await _login(proxy, url, "203.0.113.2", "b0") == 401  # another client behind the same proxy
        # ... from an untrusted address a forged X-Forwarded-For is ignored: the budget is the address's
        async with _session("127.0.0.3") as direct:
            # refused at all: with the forged header honoured each attempt would be a new client, never refused
            # (not "== spent": both counts move with the clock, see _until_refused)
            forged = await _until_refused(lambda i: _login(direct, url, f"198.51.100.{i}", f"c{i}"))
            print(f"sign-in budget: {spent} through the trusted proxy, {forged} with a forged header")
        # 6: 60 dripping half-sent requests from 127.0.0.4; 127.0.0.5 is served
        stop = asyncio.Event()
        closed: list[float] = []

        async def drip() -> None:
            started = time.monotonic()
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.4", 0))
            except OSError:
                closed.append(0.0)
                return
            writer.write(b"POST /api/v1/batches HTTP/1.1\r\nHost: x\r\n")
            with contextlib.suppress(OSError):
                while not stop.is_set():
                    writer.write(b"X")
                    await writer.drain()
                    with contextlib.suppress(asyncio.TimeoutError):
                        if await asyncio.wait_for(reader.read(1024), 0.3) == b"" or reader.at_eof():
                            break
            closed.append(time.monotonic() - started if not stop.is_set() else -1.0)
            writer.close()

        flood = [asyncio.create_task(drip()) for _ in range(60)]
        await until(lambda: len(closed) >= 52, "the 52 connections over the per-address limit refused")
        async with _session("127.0.0.5") as other:
            t0 = time.monotonic()
            async with other.get(f"{url}/healthz") as r:
                assert r.status == 200
            served_in = time.monotonic() - t0
            held_when_served = len(flood) - len(closed)
        await until(lambda: len(closed) == len(flood), "every dripping connection cut by the server")
        stop.set()
        await asyncio.gather(*flood)
        worker.terminate()  # a clean stop, waited for: the worker writes its refusal tally as it stops
        stopped = await asyncio.to_thread(worker.wait, HANG_S)
    log = (tmp_path / "cloud.log").read_text(errors="replace")
    # uvicorn ends a clean stop by raising the signal again; a kill would leave the shutdown line out
    assert stopped == -signal.SIGTERM and "Application shutdown complete" in log, log[-3000:]
    print(f"127.0.0.5 served in {served_in:.2f} s with {held_when_served} dripping connections held; "
          f"held at most {max(closed):.1f} s (header_timeout_s = {HEADER_S})")
    assert held_when_served == 8  # served while the flood held its 8 connections, not after they were cut
    assert -1.0 not in closed, sorted(closed)[-5:]  # none outlived the flood: the drip did not move the deadline
    assert "Traceback" not in log
    # 5: refused connections are audited in bounded space too (one row per source and reason per window, a
    # window's rows written every [http] refusal_window_s and when the worker stops; a slow run spans two)
    con = sqlite3.connect(tmp_path / "cloud" / "cloud.db")
    try:
        tally: dict[tuple[str, str], int] = {}
        for actor, reason, detail in con.execute("SELECT actor, reason, detail FROM audit_log "
                                                 "WHERE action = 'refusal.tally' AND target = '(connection)'"):
            tally[actor, reason] = tally.get((actor, reason), 0) + json.loads(detail)["count"]
    finally:
        con.close()
    print(f"connection refusals audited: {tally}")
    assert tally == {("127.0.0.4", "limit"): 52, ("127.0.0.4", "headers_timeout"): 8}, log[-3000:]


def test_openapi_lists_every_route_with_stow_rs(tmp_path: Path) -> None:
    cfg, _ = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}",
                        '[dicom]\nenabled = true\nobject_dir = "dicom"\nscp_enabled = false\n')
    routes = {(r.path, m.lower()) for r in build_app(cfg).routes if isinstance(r, Route) and r.include_in_schema
              for m in (r.methods or []) if m != "HEAD"}
    described = {(path, method) for path, ops in document()["paths"].items() for method in ops}
    assert ("/dicomweb/studies", "post") in routes
    assert routes == described


def test_the_nginx_example_keeps_metrics_internal_and_replaces_forwarded_for() -> None:
    conf = (ROOT / "deploy" / "cloud" / "nginx.conf").read_text()
    assert re.search(r"location = /metrics \{[^}]*return 404;", conf)
    assert "$proxy_add_x_forwarded_for" not in conf  # appending would pass on what the client forged
    assert conf.count("proxy_set_header X-Forwarded-For $remote_addr;") == conf.count("proxy_pass ")
    assert "client_header_timeout" in conf and "limit_conn " in conf
