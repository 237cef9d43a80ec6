"""A cloud with provisioning switched on: fleet CA, passphrase file, an admin with TOTP."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.config import CloudConfig
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.intake.keystore import CloudKeys
from cloud.records.crypto_at_rest import AtRest
from cloud.users import accounts as users
from cloud.users import totp_enrolment as user_totp
from provisioning import totp
from provisioning.ca import FleetCA
from provisioning.client import HttpClient
from tests.cloud.support import make_cloud

PASSWORD = "Correct-Horse-9"
CA_PASSPHRASE = "fleet CA passphrase 1"


@dataclass
class ProvCloud:
    """A configured cloud (not yet serving) and its admin users' TOTP secrets."""

    cfg: CloudConfig
    keys: CloudKeys
    ca: FleetCA
    secrets: dict[str, str]

    def code(self, user: str) -> str:
        """The user's current one-time code."""
        return totp.totp(totp.decode_secret(self.secrets[user]), time.time())


def make_prov_cloud(tmp: Path, db_url: str, extra_toml: str = "") -> ProvCloud:
    """cloud.toml with [provisioning], a fleet CA in ``tmp/ca`` and no users yet."""
    ca = FleetCA.create("mchub test fleet CA", now_ms=int(time.time() * 1000))
    ca.save(tmp / "ca", CA_PASSPHRASE.encode())
    (tmp / "ca.pass").write_text(CA_PASSPHRASE + "\n")
    (tmp / "ca.pass").chmod(0o600)
    cfg, keys = make_cloud(tmp, db_url, '[provisioning]\nca_dir = "ca"\npassphrase_file = "ca.pass"\n' + extra_toml)
    return ProvCloud(cfg, keys, ca, {})


async def add_user(cloud: ProvCloud, username: str, *roles: str) -> None:
    """Create a user with TOTP directly on the database (what `mchub cloud user add` does)."""
    db = await Database.connect(cloud.cfg.database.url, 2)
    try:
        await migrate(db)
        await users.create_user(db, username, PASSWORD, roles=roles, actor="test")
        secret, _ = await user_totp.enable_totp(db, AtRest(cloud.keys.at_rest, cloud.keys.blind_index), username,
                                            actor="test")
    finally:
        await db.close()
    cloud.secrets[username] = secret


async def login(cloud: ProvCloud, url: str, username: str) -> HttpClient:
    """An admin API client signed in as ``username``."""
    anonymous = HttpClient(url)
    answer = await asyncio.to_thread(anonymous.request, "POST", "/api/v1/admin/login",
                                     {"username": username, "password": PASSWORD, "code": cloud.code(username)})
    return HttpClient(url, bearer=answer["token"])


async def call(client: HttpClient, method: str, path: str, body: Any = None) -> Any:
    """One blocking client call from async test code."""
    return await asyncio.to_thread(client.request, method, path, body)
