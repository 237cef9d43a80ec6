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

from cloud.config import CloudConfig
from cloud.server.app import CloudState, build_app
from cloud.users import accounts as users
from cloud.users import totp_enrolment as user_totp
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
        secret, _ = await user_totp.enable_totp(self.state.db, self.state.ingestor.at_rest, name, actor="test")
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


NID = "11010519491231002X"  #: a valid GB 11643 number (check digit X)


async def seed(cloud: Cloud, keys: Any) -> dict[str, Any]:
    """A small, realistic fleet state: two hubs (one synced visit, one offline with a backlog),
    outbound messages pending and dead, an unmatched lab result and an HL7 inbound log."""
    from cloud import outbox
    from cloud.config import OutboxConfig
    from protocol.ids import now_ms
    from tests.cloud.support import ensure_site, hub, register_hub

    await ensure_site(cloud.state.db, "S1", "城关镇卫生院")
    h1, h2 = hub(keys, "H1", 1), hub(keys, "H2", 2)
    for h in (h1, h2):
        await register_hub(cloud.state.db, h.hub_id, site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
    h1.add_visit(national_id=NID)
    batch = h1.seal_from(1)
    assert batch is not None
    answer = await cloud.state.ingestor.handle(batch, peer="127.0.0.1")
    assert answer.status == 200
    now = now_ms()
    async with cloud.state.db.transaction() as tx:
        await tx.execute("UPDATE hubs SET online = $1, last_seen_ms = $2, queue_depth = 0 WHERE hub_id = 'H1'",
                         True, now)
        await tx.execute("UPDATE hubs SET online = $1, last_seen_ms = $2, queue_depth = 240 WHERE hub_id = 'H2'",
                         False, now - 3_600_000)
        await outbox.enqueue(tx, "his.vitals", "his.vitals/H1/s1", {"hub_id": "H1"})
        await outbox.enqueue(tx, "mch.upload", "mch.upload/case-7", {"case": 7})
        await outbox.enqueue(tx, "mch.upload", "mch.upload/case-8", {"case": 8})
        await _hl7(tx, now)
    dead = (await cloud.sql("SELECT id FROM outbox WHERE idempotency_key = 'mch.upload/case-7'"))[0]["id"]
    await outbox.fail(cloud.state.db, dead, "HTTP 422: 筛查日期晚于上报日期 (screening date after report date)",
                      OutboxConfig(), permanent=True)
    his = (await cloud.sql("SELECT id FROM outbox WHERE idempotency_key = 'his.vitals/H1/s1'"))[0]["id"]
    await outbox.fail(cloud.state.db, his, "AR: PID-3 unknown patient", OutboxConfig(), permanent=True)
    return {"dead_id": dead, "his_id": his, "hubs": (h1, h2)}


async def _hl7(tx: Any, now: int) -> None:
    """The HL7 listener's log (frames with their ACK codes) and one result waiting for its patient."""
    rows = [("MSG0001", "ORU^R01", "accepted", "AA", ""), ("MSG0002", "ADT^A01", "accepted", "AA", ""),
            ("MSG0003", "ORU^R01", "error", "AE", "PID-3 missing"), ("", "", "garbage", "", "no MSH segment")]
    for i, (cid, mtype, status, ack, reason) in enumerate(rows):
        await tx.execute("INSERT INTO hl7_inbound (uid, received_ms, peer, sender, control_id, message_type, status, "
                         "ack_code, reason, raw, processed_ms) VALUES ($1, $2, '10.0.0.5', 'HIS^LAB', $3, $4, $5, $6, "
                         "$7, $8, $9)", f"u{i}", now - i * 60_000, cid, mtype, status, ack, reason, b"MSH|...", now)
    await tx.execute("INSERT INTO unmatched (kind, ref, mrn_authority, mrn, summary, created_ms) "
                     "VALUES ('hl7', 'u0', 'HIS', 'MRN0042', 'LAB0001/1 2345-7 glucose 5.4 mmol/L', $1)", now)


#: a blood count for 王秀英 (born 1949-12-31) under an MRN the cloud has never seen: it waits on the work list
LAB_WITHOUT_ID = (
    "MSH|^~\\&|LIS|妇幼保健院|MCHUB|CLOUD|20261206093000+0800||ORU^R01^ORU_R01|LIS00000901|P|2.5.1||||||UNICODE UTF-8\r"
    "PID|1||M900001^^^HOSP^MR||王秀英||19491231|F\r"
    "OBR|1|ORD901|FIL901|CBC^血常规^L|||20261206080000+0800\r"
    "OBX|1|NM|718-7^Hb^LN||9.8|g/dL|11.5-15.0||||F\r"
    "OBX|2|NM|6690-2^WBC^LN||6.1|10*9/L|3.5-9.5|N|||F\r").encode()


async def seed_worklist(cloud: Cloud) -> dict[str, int]:
    """Known subjects born 1949-12-31 — 王秀英 with her ID number (stored sex unknown: the number says
    female), 王秀云 (a woman, no ID number), 王秀英 a man — and 李娜 born another day; then
    :data:`LAB_WITHOUT_ID` received and processed as the HL7 listener and processor would.
    Returns the subject ids by name and the waiting item's id (``item``)."""
    from cloud.intake.sync_store import upsert_subject
    from cloud.integration.inbound import Hl7Processor
    from cloud.mllp.db_store import Hl7Store
    from cloud.mllp.store import InboundMeta
    from protocol.ids import now_ms
    from protocol.model import Subject

    db, at_rest = cloud.state.db, cloud.state.ingestor.at_rest
    people = {"her": Subject(national_id=NID, name="王秀英", sex="0", birth_date="1949-12-31"),
              "similar": Subject(name="王秀云", sex="2", birth_date="1949-12-31"),
              "man": Subject(name="王秀英", sex="1", birth_date="1949-12-31"),
              "other_day": Subject(name="李娜", sex="2", birth_date="1985-01-01")}
    ids: dict[str, int] = {}
    async with db.transaction() as tx:
        for key, s in people.items():
            ids[key] = await upsert_subject(tx, s, at_rest, now_ms())
        await tx.execute("UPDATE subjects SET sex = '0' WHERE id = $1", ids["her"])  # as an HL7-only record leaves it
    store = Hl7Store(db, at_rest)
    try:
        await store.store(LAB_WITHOUT_ID, InboundMeta(received_at=now_ms(), peer="10.0.0.5", status="accepted",
                                                      ack_code="AA", sender="LIS|妇幼保健院", control_id="LIS00000901",
                                                      message_type="ORU^R01"))
        await Hl7Processor(db, store, at_rest).run_once()
    finally:
        await store.close()
    ids["item"] = (await cloud.sql("SELECT id FROM unmatched WHERE mrn = 'M900001'"))[0]["id"]
    return ids


async def seed_history(cloud: Cloud, now: int) -> None:
    """A day of traffic for the dashboard's charts: the per-minute samples the sampler writes (records
    stored, batches, messages queued, dead letters, lags, HL7 frames received and answered with an
    error), and refused batches now and then."""
    import math

    from cloud import audit

    minute0 = now // 60_000 - 1440
    rows: list[tuple[int, str, int]] = []
    records = batches = 0
    for m in range(1441):
        busy = max(0.0, math.sin((m / 1440 - 0.3) * math.pi * 2))  # a working day's curve
        records += int(40 * busy) + 2
        batches += int(4 * busy) + 1
        rows += [(minute0 + m, "sync.records", records), (minute0 + m, "sync.batches", batches),
                 (minute0 + m, "outbox.created.his", int(6 * busy)), (minute0 + m, "outbox.created.mch", m % 7 // 6),
                 (minute0 + m, "outbox.dead", 1 + m // 400), (minute0 + m, "sync.lag_s", int(600 * busy) + 30),
                 (minute0 + m, "outbox.lag_s", 45 + (m % 180) * 3),
                 (minute0 + m, "hl7.received", int(3 * busy) + (m % 4 == 0)), (minute0 + m, "hl7.errors", m % 97 == 0)]
    async with cloud.state.db.transaction() as tx:
        await tx.executemany("INSERT INTO dashboard_samples (minute, metric, value) VALUES ($1, $2, $3) "
                             "ON CONFLICT (minute, metric) DO NOTHING", rows)
        for h in (2, 5, 6, 13):
            await audit.write(tx, actor="ingest", action="batch.refused", outcome="refused", hub_id="H2",
                              reason="signature", at_ms=now - h * 3_600_000 - 600_000)
