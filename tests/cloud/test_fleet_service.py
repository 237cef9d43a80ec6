"""Fleet operations on the cloud database with a controlled clock: the refusals of issue 6, on SQLite and PostgreSQL.

(The same refusals are tested on in-memory stores in tests/provisioning; here they go through
the cloud's transactions, its SQL stores and the key rows batch ingest reads.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.fleet.registry import lookup_signer
from cloud.fleet.service import Fleet, load_authority
from protocol.keys import signing_key_id
from provisioning import hubauth
from provisioning.ca import FleetCA, fingerprint
from provisioning.enrollment import EnrollRequest, accept_response, build_request, proof_message
from provisioning.errors import (
    CsrMismatch,
    HubRevoked,
    ResponseError,
    TokenExpired,
    TokenUsed,
    TokenWrongSite,
    UnknownKey,
)
from provisioning.rotation import build_rotation
from provisioning.tokens import parse_token
from tests.cloud.fleet_support import ProvCloud, make_prov_cloud

HOUR = 3_600_000
DAY = 24 * HOUR


class Clock:
    """A settable clock for the Fleet."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture(params=["sqlite", "postgres"])
async def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[Fleet, ProvCloud]]:
    url = (f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("pg_dsn")))
    prov = make_prov_cloud(tmp_path / "cloud", url)
    db = await Database.connect(prov.cfg.database.url)
    await migrate(db)
    clock = Clock(int(prov.ca.cert.not_valid_before_utc.timestamp() * 1000) + HOUR)
    f = Fleet(db, load_authority(prov.cfg, prov.keys, at_ms=clock.now), prov.keys.signing, clock=clock)
    await f.add_site("alice", "dongcheng", "东城")
    await f.add_site("alice", "xicheng", "西城")
    yield f, prov
    await db.close()


def at(f: Fleet, ms: int) -> None:
    assert isinstance(f.clock, Clock)
    f.clock.now = ms


async def test_token_refusals(fleet: tuple[Fleet, ProvCloud]) -> None:
    f, _ = fleet
    start = f.clock()
    token = (await f.create_token("alice", "dongcheng", expires_in_s=3600)).text
    key = ed25519.Ed25519PrivateKey.generate()
    at(f, start + 2 * HOUR)
    with pytest.raises(TokenExpired):
        await f.enroll(build_request(key, token, "PI-1"))
    at(f, start)
    with pytest.raises(TokenWrongSite):
        await f.enroll(build_request(key, token, "PI-1", site_id="xicheng"))
    response = await f.enroll(build_request(key, token, "PI-1"))
    assert response.hub_id == "dongcheng-h01" and not response.repeated
    assert (await f.enroll(build_request(key, token, "PI-1"))).repeated  # a re-run is answered again
    with pytest.raises(TokenUsed):
        await f.enroll(build_request(ed25519.Ed25519PrivateKey.generate(), token, "PI-2"))
    assert [t.used_by_hub for t in await f.tokens("dongcheng")] == ["dongcheng-h01"]


async def test_csr_with_a_mismatched_key(fleet: tuple[Fleet, ProvCloud]) -> None:
    f, _ = fleet
    token = (await f.create_token("alice", "dongcheng")).text
    honest = build_request(ed25519.Ed25519PrivateKey.generate(), token, "PI-1")
    other = ed25519.Ed25519PrivateKey.generate()
    der = x509.load_pem_x509_csr(honest.csr_pem.encode()).public_bytes(serialization.Encoding.DER)
    forged = EnrollRequest(token=token, hub_serial="PI-1", csr_pem=honest.csr_pem,
                           proof=other.sign(proof_message(parse_token(token).token_id, "PI-1", der)))
    with pytest.raises(CsrMismatch):
        await f.enroll(forged)
    assert await f.hubs() == []  # nothing was written


async def test_certificate_from_another_ca_and_expired_certificate(fleet: tuple[Fleet, ProvCloud]) -> None:
    f, _ = fleet
    start = f.clock()
    token = (await f.create_token("alice", "dongcheng")).text
    key = ed25519.Ed25519PrivateKey.generate()
    response = await f.enroll(build_request(key, token, "PI-1"))
    stranger = FleetCA.create("another fleet", now_ms=start)
    with pytest.raises(ResponseError, match="pinned"):  # the hub pinned another CA: it trusts nothing here
        accept_response(response, key, token, now_ms=start, ca_fingerprint=fingerprint(stranger.cert))
    kid = signing_key_id(key.public_key())
    assert (await lookup_signer(f.db, "dongcheng-h01", kid, start)).public_key is not None
    expired = start + 31 * DAY  # [provisioning] hub_cert_days = 30
    at(f, expired)
    assert (await lookup_signer(f.db, "dongcheng-h01", kid, expired)).public_key is None  # batches refused
    headers = hubauth.sign_request(key, hub_id="dongcheng-h01", method="GET", path="/api/v1/hub/config", body=b"",
                                   now_ms=expired)
    with pytest.raises(UnknownKey):
        await f.hub_config({k.lower(): v for k, v in headers.items()}, method="GET", path="/api/v1/hub/config",
                           body=b"")
    with pytest.raises(UnknownKey):  # an expired key cannot rotate itself either: enroll again
        await f.rotate(build_rotation("dongcheng-h01", key, ed25519.Ed25519PrivateKey.generate()))


async def test_rotation_overlap_then_revocation(fleet: tuple[Fleet, ProvCloud]) -> None:
    f, _ = fleet
    start = f.clock()
    token = (await f.create_token("alice", "dongcheng")).text
    old = ed25519.Ed25519PrivateKey.generate()
    await f.enroll(build_request(old, token, "PI-1"))
    new = ed25519.Ed25519PrivateKey.generate()
    answer = await f.rotate(build_rotation("dongcheng-h01", old, new))
    assert answer.old_key_retire_ms == start + 24 * HOUR
    for k in (old, new):
        assert (await lookup_signer(f.db, "dongcheng-h01", signing_key_id(k.public_key()), start + HOUR)).public_key
    late = start + 25 * HOUR
    assert (await lookup_signer(f.db, "dongcheng-h01", signing_key_id(old.public_key()), late)).public_key is None
    assert (await lookup_signer(f.db, "dongcheng-h01", signing_key_id(new.public_key()), late)).public_key
    row = await f.revoke("alice", "dongcheng-h01", "stolen")
    assert row.status == "revoked"
    assert (await lookup_signer(f.db, "dongcheng-h01", signing_key_id(new.public_key()), late)).hub_status == "revoked"
    with pytest.raises(HubRevoked):
        await f.rotate(build_rotation("dongcheng-h01", new, ed25519.Ed25519PrivateKey.generate()))
    actions = [e.action for e in await f.audit("dongcheng-h01")]
    assert actions == ["hub.enroll", "hub.rotate", "hub.revoke"]
