"""Fixtures for provisioning tests: a fleet CA, the cloud's keys, in-memory stores.

Times are fixed (``NOW``) so validity and expiry tests are deterministic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.keys import RecipientPrivate, SuiteId
from provisioning import admin, auth, totp
from provisioning.authority import Authority
from provisioning.bundle import CloudKeys
from provisioning.ca import FleetCA
from provisioning.enrollment import EnrollResponse, build_request, process_enrollment
from provisioning.stores import Stores
from tests.provisioning.memory import MemoryAudit, memory_stores
from tests.provisioning.peer import PeerServer, PeerState

PASSWORD = "Correct-Horse-9"  #: of the test peer's admin users
SECRET = totp.new_secret()  #: their TOTP secret
T = TypeVar("T")
NOW = 1_750_000_000_000  # 2025-06-15T15:06:40Z
HOUR = 3_600_000
DAY = 24 * HOUR


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run one store call from synchronous test code (the peer's stores are plain in-memory objects)."""
    return asyncio.run(coro)


@dataclass
class Cloud:
    """The cloud side of a test: CA, keys, authority and stores."""

    ca: FleetCA
    recipients: dict[SuiteId, RecipientPrivate]
    signing_key: ed25519.Ed25519PrivateKey
    authority: Authority
    stores: Stores

    @property
    def audit(self) -> MemoryAudit:
        assert isinstance(self.stores.audit, MemoryAudit)
        return self.stores.audit

    async def token(self, site: str = "dongcheng", *, now: int = NOW, serial: str | None = None,
                    lifetime: int = DAY) -> str:
        created = await admin.create_token(self.stores, site_id=site, actor="alice", now_ms=now,
                                           lifetime_ms=lifetime, hub_serial=serial)
        return created.text

    async def enroll(self, key: ed25519.Ed25519PrivateKey, token: str, *, serial: str = "PI-0001",
                     now: int = NOW, site: str | None = None) -> EnrollResponse:
        request = build_request(key, token, serial, site_id=site)
        return await process_enrollment(request, self.stores, self.authority, now_ms=now)


@pytest.fixture(scope="session")
def fleet_ca() -> FleetCA:
    return FleetCA.create("mchub test fleet CA", now_ms=NOW - DAY)


@pytest.fixture(scope="session")
def cloud_keys() -> tuple[dict[SuiteId, RecipientPrivate], ed25519.Ed25519PrivateKey]:
    return {s: RecipientPrivate.generate(s) for s in SuiteId}, ed25519.Ed25519PrivateKey.generate()


@pytest.fixture
async def cloud(fleet_ca: FleetCA, cloud_keys: tuple[dict[SuiteId, RecipientPrivate], ed25519.Ed25519PrivateKey]
                ) -> Cloud:
    recipients, signing = cloud_keys
    keys = CloudKeys(tuple(r.public() for r in recipients.values()), signing.public_key())
    authority = Authority.build(fleet_ca, keys, signing, mqtt_url="mqtts://mqtt.example.test:8883", now_ms=NOW)
    stores = memory_stores()
    await admin.add_site(stores, site_id="dongcheng", name="东城社区卫生服务中心", actor="alice", now_ms=NOW)
    await admin.add_site(stores, site_id="xicheng", name="西城妇幼保健院", actor="alice", now_ms=NOW)
    return Cloud(fleet_ca, recipients, signing, authority, stores)


@pytest.fixture
def peer(fleet_ca: FleetCA, cloud_keys: tuple[dict[SuiteId, RecipientPrivate], ed25519.Ed25519PrivateKey]
         ) -> Iterator[tuple[PeerServer, PeerState]]:
    recipients, signing = cloud_keys
    keys = CloudKeys(tuple(r.public() for r in recipients.values()), signing.public_key())
    authority = Authority.build(fleet_ca, keys, signing, mqtt_url="mqtt://127.0.0.1:1883",
                                now_ms=time.time_ns() // 1_000_000)
    hashed = auth.hash_password(PASSWORD, log_n=10)
    users = {name: auth.AdminUser(username=name, role=role, password_hash=hashed, totp_secret=SECRET)
             for name, role in (("alice", "admin"), ("ivan", "integration"))}
    state = PeerState(memory_stores(), authority, users,
                      recipients={r.public().key_id: r for r in recipients.values()})
    with PeerServer(state) as server:
        yield server, state
