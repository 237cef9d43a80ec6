"""Helpers for the cloud tests: a cloud directory, an in-process server, worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import uvicorn
from cryptography.hazmat.primitives.asymmetric import ed25519

from cloud.config import CloudConfig, load
from cloud.db.engine import Database
from cloud.fleet.service import Fleet
from cloud.intake.keystore import CloudKeys, init_keys
from cloud.server.app import build_app
from firmware_sim.fleet import CloudKeys as PublicKeys
from firmware_sim.fleet import VirtualHub
from protocol.keys import SuiteId
from tests.support.services import free_port, wait_for_port

TOKEN = "test-admin-token"


def make_cloud(tmp: Path, db_url: str, extra_toml: str = "", **server: object) -> tuple[CloudConfig, CloudKeys]:
    """Write cloud.toml + keys + admin token under ``tmp``; returns the loaded config and keys."""
    tmp.mkdir(parents=True, exist_ok=True)
    extra = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in server.items())
    (tmp / "cloud.toml").write_text(
        f'[server]\nport = {free_port()}\nretry_after_s = 1\n{extra}\n[database]\nurl = "{db_url}"\n'
        '[keys]\ndir = "keys"\n[admin]\ntoken_file = "admin.token"\n[logging]\nlevel = "INFO"\n' + extra_toml)
    (tmp / "admin.token").write_text(TOKEN)
    keys = init_keys(tmp / "keys")
    return load(tmp / "cloud.toml"), keys


def public_keys(keys: CloudKeys, suite: SuiteId = SuiteId.X25519_AES256GCM) -> PublicKeys:
    """What a hub knows about the cloud."""
    return PublicKeys(keys.published[suite], keys.signing.public_key())


def hub(keys: CloudKeys, hub_id: str, seed: int = 1) -> VirtualHub:
    """A virtual hub that seals to this cloud (not yet registered)."""
    import random

    return VirtualHub(hub_id, public_keys(keys), random.Random(seed))


@contextlib.asynccontextmanager
async def serving(cfg: CloudConfig) -> AsyncIterator[str]:
    """Run the app in this event loop under uvicorn on a free port; yields the base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(build_app(cfg), host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped during start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@contextlib.contextmanager
def worker_process(cfg: CloudConfig, port: int, log: Path, workers: int = 1) -> Iterator[subprocess.Popen[bytes]]:
    """``mchub cloud serve`` as a real process on ``port``; killed at the end."""
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mchub", "cloud", "serve", "--config", str(cfg.path),
                                 "--port", str(port), "--workers", str(workers)],
                                stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        wait_for_port(port, timeout=60, proc=proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def dicom_sender(url: str, name: str = "SIMPACS") -> tuple[str, str]:
    """A STOW-RS sender credential (name, token) created through the admin API of the cloud at ``url``."""
    import aiohttp

    async with aiohttp.ClientSession() as http, http.post(
            f"{url}/admin/v1/dicom-senders", json={"name": name}, headers={"Authorization": f"Bearer {TOKEN}"}) as r:
        doc = await r.json()
        assert r.status == 200, doc
    return name, str(doc["token"])

@contextlib.asynccontextmanager
async def fleet_on(where: CloudConfig | Database, keys: CloudKeys | None = None) -> AsyncIterator[Fleet]:
    """The one fleet registry on this cloud's database (no CA, no broker), as the CLI builds it."""
    db = await Database.connect(where.database.url, 2) if isinstance(where, CloudConfig) else where
    try:
        yield Fleet(db, None, keys.signing if keys is not None else ed25519.Ed25519PrivateKey.generate())
    finally:
        if db is not where:
            await db.close()


async def ensure_site(where: CloudConfig | Database, site_id: str, name: str = "") -> None:
    """Create a site for hand-registered hubs (``mchub cloud site add``)."""
    async with fleet_on(where) as fleet:
        await fleet.ensure_site("test", site_id, name)


async def register_hub(where: CloudConfig | Database, hub_id: str, *, site_id: str, public_key: bytes) -> str:
    """Register a hub by hand (``mchub cloud hub add``); returns its key id."""
    async with fleet_on(where) as fleet:
        return await fleet.register_hub("test", hub_id, site_id=site_id, public_key=public_key)


async def revoke_hub(where: CloudConfig | Database, hub_id: str, *, reason: str) -> None:
    """Revoke a hub (``mchub cloud hub revoke``)."""
    async with fleet_on(where) as fleet:
        await fleet.revoke("test", hub_id, reason)
