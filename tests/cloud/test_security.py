"""Refused batches on PostgreSQL over real HTTP: each gets the documented status and reason
and an audit entry; no national ID number or name reaches the database files or the logs."""

from __future__ import annotations

import json
import logging
import random
import struct
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from firmware_sim.fleet import random_national_id
from protocol.envelope import SIGNATURE_LEN, parse_header, seal
from protocol.keys import RecipientPrivate, SuiteId
from tests.cloud.support import ensure_site, hub, register_hub, revoke_hub, serving

pytestmark = pytest.mark.postgres
BATCH = {"Content-Type": "application/vnd.mchub.batch"}


async def post(http: aiohttp.ClientSession, url: str, batch: bytes) -> tuple[int, dict]:  # type: ignore[type-arg]
    async with http.post(f"{url}/api/v1/batches", data=batch, headers=BATCH) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else {"ack": True})


def resign(batch: bytes, key: ed25519.Ed25519PrivateKey) -> bytes:
    body = batch[:-SIGNATURE_LEN]
    return body + key.sign(body)


async def audit(dsn: str) -> list[tuple[str | None, str | None]]:
    con = await asyncpg.connect(dsn)
    try:
        return [(r["hub_id"], r["reason"]) for r in await con.fetch(
            "SELECT hub_id, reason FROM audit_log WHERE action IN ('batch.refused', 'batch.duplicate') ORDER BY id")]
    finally:
        await con.close()


async def test_refusals_have_the_right_status_reason_and_audit_entry(pg_cloud, pg_dsn) -> None:
    cfg, keys = pg_cloud
    a, b = hub(keys, "HA", 1), hub(keys, "HB", 2)
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        for h in (a, b):
            await register_hub(cfg, h.hub_id, site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        a.add_visit()
        good = a.seal_from(1)
        assert (await post(http, url, good))[0] == 200
        cases: list[tuple[str, bytes, int, str]] = []
        flipped = bytearray(good)
        flipped[parse_header(good).header_len + 40] ^= 1
        cases.append(("tampered in transit", bytes(flipped), 401, "bad_signature"))
        cases.append(("tampered, re-signed", resign(bytes(flipped), a.key), 400, "tampered_ciphertext"))
        # hub A's key signing a batch whose header claims hub B
        b.add_visit()
        claim_b = seal(b.pending, hub_id="HB", epoch=b.epoch, signer=a.key, recipient=b.cloud.recipient)
        cases.append(("cross-hub", claim_b, 401, "unknown_key"))
        stranger = ed25519.Ed25519PrivateKey.generate()
        cases.append(("wrong key", seal(b.pending, hub_id="HB", epoch=b.epoch, signer=stranger,
                                        recipient=b.cloud.recipient), 401, "unknown_key"))
        other_cloud = RecipientPrivate.generate(SuiteId.X25519_AES256GCM).public()
        cases.append(("wrong recipient", seal(b.pending, hub_id="HB", epoch=b.epoch, signer=b.key,
                                              recipient=other_cloud), 401, "wrong_recipient"))
        cases.append(("unknown hub", seal(b.pending, hub_id="HZ", epoch=b.epoch, signer=b.key,
                                          recipient=b.cloud.recipient), 403, "unknown_hub"))
        truncated = good[:70] + struct.pack(">I", 5)
        cases.append(("truncated", truncated, 400, "malformed"))
        for name, batch, status, reason in cases:
            got_status, doc = await post(http, url, batch)
            assert (got_status, doc.get("reason")) == (status, reason), name
        assert (await post(http, url, good))[0] == 200  # a replay: 200, ack status 1, audited
        await revoke_hub(cfg, "HA", reason="stolen")
        a.add_visit()
        status, doc = await post(http, url, a.seal_from(7))
        assert (status, doc["reason"]) == (403, "revoked")
    # the serving block has ended: the refusal tally is flushed
    entries = await audit(pg_dsn)  # entries of their own: only refusals of batches whose signature verified
    # (revoked: hub A's key was cached by the worker, so its signature was checked before the store refused)
    assert entries == [("HA", "tampered_ciphertext"), ("HB", "wrong_recipient"), ("HA", "duplicate"),
                       ("HA", "revoked")]
    con = await asyncpg.connect(pg_dsn)
    try:
        tally = {(r["reason"], r["target"]): json.loads(r["detail"])["count"] for r in await con.fetch(
            "SELECT reason, target, detail FROM audit_log WHERE action = 'refusal.tally'")}
    finally:
        await con.close()
    route = "/api/v1/batches"
    assert tally == {("bad_signature", route): 1, ("unknown_key", route): 2, ("unknown_hub", route): 1,
                     ("malformed", route): 1}


def _grep(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path}: {n!r}" for n in needles if n in data]
    return hits


async def test_no_national_id_or_name_in_plaintext_in_database_files_or_logs(
        pg_cloud, pg_dsn, postgres, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg, keys = pg_cloud
    rng = random.Random()
    ids = [random_national_id(rng) for _ in range(5)]
    h = hub(keys, "HP")
    async with serving(cfg) as url, aiohttp.ClientSession() as http:
        await ensure_site(cfg, "S1")
        await register_hub(cfg, "HP", site_id="S1", public_key=bytes.fromhex(h.public_key_hex))
        names = []
        for nid in ids:
            names.append(next(r.subject.name for r in h.add_visit(national_id=nid) if hasattr(r, "subject")))
        batch = h.seal_from(1)
        assert (await post(http, url, batch))[0] == 200
        bad = bytearray(batch)
        bad[-1] ^= 1
        assert (await post(http, url, bytes(bad)))[0] == 401  # refusals log and audit too
    con = await asyncpg.connect(pg_dsn)
    try:
        assert await con.fetchval("SELECT COUNT(*) FROM subjects WHERE blind_index IS NOT NULL") == 5
        await con.execute("CHECKPOINT")
    finally:
        await con.close()
    needles = [n.encode() for n in ids] + [n.encode() for n in names] + [n.encode("utf-16-le") for n in ids]
    assert _grep(postgres.data, needles) == []
    log_text = "\n".join(r.getMessage() for r in caplog.records).encode()
    assert not [n for n in needles if n in log_text]
    assert b"batch refused" in log_text  # the logs were captured at all
