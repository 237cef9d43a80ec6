"""Tampering at the sync API, on SQLite and PostgreSQL over real HTTP: forged, replayed,
reordered, truncated and cross-hub batches are each refused (or answered as a no-op) with
a typed reason, audited in the hash-chained log, and leave every data table exactly as it
was. Unauthenticated calls to every non-public route are refused without side effects.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric import ed25519
from starlette.routing import Route

from cloud.audit import chain as audit_chain
from cloud.db.engine import Database
from cloud.server.app import build_app
from protocol.envelope import SIGNATURE_LEN, parse_header, seal
from protocol.keys import RecipientPrivate, SuiteId
from tests.cloud.support import ensure_site, hub, register_hub, serving
from tests.support.waiting import until

BATCH = {"Content-Type": "application/vnd.mchub.batch"}
TABLES = ("readings", "sessions", "subjects", "stations", "devices", "reading_bindings", "results", "outbox",
          "hubs", "hub_keys", "sites")
#: routes anyone may call (the batch endpoint authenticates each batch by its signature)
PUBLIC = {"/api/v1/batches", "/api/v1/keys", "/healthz", "/readyz", "/metrics", "/openapi.json",
          "/api/v1/admin/logout",  # signing out without a session is a harmless no-op (204)
          "/"}  # redirects to /ui/, whose pages ask for a sign-in (tests/cloud/web/test_security.py)
#: pages every visitor must reach to sign in (added by the web pages; they answer GET with a form)
PUBLIC_PREFIXES = ("/login", "/logout", "/lang", "/static")


async def snapshot(db: Database) -> dict[str, Any]:
    """Row counts of every data table plus the sync marks: what must not change."""
    async with db.transaction() as tx:
        out: dict[str, Any] = {t: await tx.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}
        out["sync_state"] = [tuple(r) for r in await tx.fetch(
            "SELECT hub_id, epoch, acked_through, records FROM sync_state ORDER BY hub_id, epoch")]
    return out


async def last_audit(db: Database) -> tuple[str, str | None, str | None]:
    """The newest entry of its own (tally rows of unproven senders' refusals aside)."""
    async with db.transaction() as tx:
        r = await tx.fetchrow("SELECT action, reason, hub_id FROM audit_log WHERE action <> 'refusal.tally' "
                              "ORDER BY id DESC LIMIT 1")
    assert r is not None
    return r["action"], r["reason"], r["hub_id"]


async def tallied(db: Database) -> dict[str, int]:
    """Refusal counts by reason in the aggregated tally rows."""
    async with db.transaction() as tx:
        rows = await tx.fetch("SELECT reason, detail FROM audit_log WHERE action = 'refusal.tally'")
    out: dict[str, int] = {}
    for r in rows:
        out[r["reason"]] = out.get(r["reason"], 0) + int(json.loads(r["detail"])["count"])
    return out


async def post(http: aiohttp.ClientSession, url: str, batch: bytes) -> tuple[int, str | None]:
    async with http.post(f"{url}/api/v1/batches", data=batch, headers=BATCH) as r:
        doc = await r.json() if r.content_type == "application/json" else {}
        return r.status, doc.get("reason")


async def test_forged_replayed_reordered_truncated_and_cross_hub_batches_change_nothing(any_cloud) -> None:
    cfg, keys = any_cloud
    a, b = hub(keys, "HA", 1), hub(keys, "HB", 2)
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        db = await Database.connect(cfg.database.url, 2)
        try:
            await ensure_site(cfg, "S1")
            for h in (a, b):
                await register_hub(cfg, h.hub_id, site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
            for _ in range(3):
                a.add_visit()
            first, second, third = (seal(a.pending[i:i + 6], hub_id="HA", epoch=a.epoch, signer=a.key,
                                         recipient=a.cloud.recipient) for i in (0, 6, 12))
            assert (await post(http, url, first))[0] == 200
            b.add_visit()
            body = first[:-SIGNATURE_LEN]
            flipped = bytearray(first)
            flipped[parse_header(first).header_len + 40] ^= 1
            stranger = ed25519.Ed25519PrivateKey.generate()
            other_cloud = RecipientPrivate.generate(SuiteId.X25519_AES256GCM).public()
            # unproven senders' refusals get no entry of their own: one tally row per source, route, reason
            tally = ("refusal.tally", None, None)
            cases: list[tuple[str, bytes, tuple[int, str | None], tuple[str, str | None, str | None]]] = [
                ("forged: ciphertext altered", bytes(flipped), (401, "bad_signature"), tally),
                ("forged: re-signed by a stranger", body + stranger.sign(body), (401, "bad_signature"), tally),
                ("replayed", first, (200, None), ("batch.duplicate", "duplicate", "HA")),
                ("reordered: third before second", third, (409, None), ("batch.gap", "gap", "HA")),
                ("truncated: header only", first[:80], (400, "malformed"), tally),
                ("truncated: body cut", first[:len(first) // 2], (400, "malformed"), tally),
                ("truncated: no signature", first[:-SIGNATURE_LEN], (400, "malformed"), tally),
                ("truncated: length lies", first[:70] + struct.pack(">I", 5), (400, "malformed"), tally),
                ("cross-hub: A's key claims B", seal(b.pending, hub_id="HB", epoch=b.epoch, signer=a.key,
                                                     recipient=b.cloud.recipient), (401, "unknown_key"), tally),
                ("cross-hub: A's batch for another cloud", seal(a.pending[6:12], hub_id="HA", epoch=a.epoch,
                                                                signer=a.key, recipient=other_cloud),
                 (401, "wrong_recipient"), ("batch.refused", "wrong_recipient", "HA")),
            ]
            for name, batch, answer, entry in cases:
                before = await snapshot(db)
                own = await last_audit(db)
                got = await post(http, url, batch)
                if answer[0] != 200:
                    assert got == answer, name
                else:
                    assert got[0] == 200, name
                assert await snapshot(db) == before, f"{name}: a refused batch changed the database"
                assert await last_audit(db) == (own if entry == tally else entry), name
            want = {"bad_signature": 2, "malformed": 4, "unknown_key": 1}
            async def flushed() -> bool:  # [http] refusal_window_s = 0.2 (any_cloud): flushed after the window
                return await tallied(db) == want

            await until(flushed, f"the refusal tally {want}")
            assert (await post(http, url, second))[0] == 200  # in order, the same batches are fine
            assert (await post(http, url, third))[0] == 200
            after = await snapshot(db)
            assert after["sync_state"][0][2] == 18
            await audit_chain.seal_all(db)
            verdict = await audit_chain.verify(db)
            assert verdict.ok and verdict.entries >= sum(e != tally for *_, e in cases), verdict.describe()
        finally:
            await db.close()


async def test_every_non_public_route_refuses_anonymous_and_wrong_token_calls(sqlite_cloud) -> None:
    """Every route but the public ones, every method, with no / a wrong / a guessed credential and an
    SQL-injection probe in the query and body: refused (3xx to a sign-in page or 4xx), never 2xx or 5xx,
    and no row of any data table changes. Sign-in and enrollment routes authenticate by their body,
    so they are swept too: junk must be refused."""
    cfg, _ = sqlite_cloud
    routes = [r for r in build_app(cfg).routes
              if isinstance(r, Route) and r.path not in PUBLIC and not r.path.startswith(PUBLIC_PREFIXES)]
    assert routes, "no protected routes found"
    probe = "' OR '1'='1'; DROP TABLE readings; --"
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        db = await Database.connect(cfg.database.url, 2)
        try:
            before = await snapshot(db)
            for route in routes:
                path = route.path.replace("{", "").replace("}", "")  # /hubs/{hub_id}/revoke -> /hubs/hub_id/revoke
                for method in sorted(route.methods or {"GET"}):
                    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic YWRtaW46YWRtaW4="},
                                    {"Cookie": "session=forged"}):
                        async with http.request(method, url + path, headers=headers, params={"q": probe},
                                                json={"site_id": probe, "username": "admin", "password": probe,
                                                      "token": probe}, allow_redirects=False) as r:
                            assert 300 <= r.status < 500, f"{method} {path} {headers}: {r.status}"
                            if r.status < 400:
                                assert "login" in r.headers.get("Location", ""), f"{method} {path}"
            assert await snapshot(db) == before
        finally:
            await db.close()
