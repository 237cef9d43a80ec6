"""Enrollment with one-time tokens, as a central admin and a clinic technician do it.

1. before the cloud starts: ``mchub provision ca init`` (fleet CA, passphrase file) and
   ``[provisioning]`` in cloud.toml; after ``cloud init``: ``mchub cloud user add`` creates
   the demo admin (password + TOTP secret, shown as live 6-digit codes by the demo);
2. the admin signs in (``POST /api/v1/admin/login`` with password and code), creates the
   site and one token per hub (``POST /api/v1/admin/tokens``);
3. each hub runs ``mchub edge enroll --cloud URL --token T --config hub.toml`` and gets its
   id, certificate and the cloud's keys.

Used when this build has the cloud's provisioning routes (:func:`available`); otherwise
:mod:`mchub.demo.setup` registers the hubs through the ``/admin/v1`` bearer token.
"""

from __future__ import annotations

import base64
import importlib.util
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from mchub.demo.cloudside import DemoCloud, DemoError, run_command
from mchub.demo.hubside import DemoHub

ADMIN = "demo-admin"


def available() -> bool:
    """True when the cloud serves enrollment (``cloud.fleet``) and the hub has ``edge enroll``."""
    return (importlib.util.find_spec("cloud.fleet") is not None
            and importlib.util.find_spec("provisioning.enroll_cli") is not None)


@dataclass
class AdminLogin:
    """The demo admin's credentials."""

    username: str
    password: str
    totp_key: bytes
    secret: str = ""  #: the same key in base32, for an authenticator app
    used_step: int = -1  #: the time step the demo's own sign-in used (a code works once)

    def code(self) -> str:
        """A 6-digit one-time code nobody has used yet (the next step's if the demo used this one)."""
        from provisioning.totp import hotp, step_at

        return hotp(self.totp_key, max(step_at(time.time()), self.used_step + 1))

    def use(self) -> str:
        """A code for the demo's own sign-in, remembered so the display shows a fresh one."""
        from provisioning.totp import step_at

        code = self.code()
        self.used_step = max(step_at(time.time()), self.used_step + 1)
        return code


def _secret_file(path: Path, text: str) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    return path


async def prepare_cloud(cloud: DemoCloud) -> None:
    """The fleet CA and the ``[provisioning]`` section (before ``cloud init``)."""
    ca, passphrase = cloud.directory / "ca", cloud.directory / "ca.pass"
    cloud.directory.mkdir(parents=True, exist_ok=True)
    _secret_file(passphrase, secrets.token_urlsafe(24))
    await run_command([sys.executable, "-m", "mchub", "provision", "ca", "init", "--dir", str(ca),
                       "--passphrase-file", str(passphrase)], cloud.directory, "mchub provision ca init")
    cloud.extra_toml.append(f'\n[provisioning]\nca_dir = "{ca}"\npassphrase_file = "{passphrase}"\n')


async def create_admin(cloud: DemoCloud) -> AdminLogin:
    """``mchub cloud user add`` with a generated password; the TOTP secret is read from its output."""
    password = "Demo-" + secrets.token_urlsafe(9)
    pw_file = _secret_file(cloud.directory / "admin.password", password)
    out = await run_command([sys.executable, "-m", "mchub", "cloud", "user", "add", ADMIN, "--role", "admin",
                             "--password-file", str(pw_file), "--config", str(cloud.config)],
                            cloud.directory, "mchub cloud user add")
    found = re.search(r"secret:\s*([A-Z2-7=]+)", out)
    if found is None:
        raise DemoError(f"mchub cloud user add printed no TOTP secret:\n{out}")
    secret = found.group(1)
    return AdminLogin(ADMIN, password, base64.b32decode(secret + "=" * (-len(secret) % 8)), secret)


async def _api(http: aiohttp.ClientSession, cloud: DemoCloud, path: str, body: object,
               token: str | None = None) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(f"{cloud.url}/api/v1/admin{path}", json=body, headers=headers) as resp:
        doc: dict[str, object] = await resp.json(content_type=None)
        if resp.status >= 300:
            raise DemoError(f"POST /api/v1/admin{path}: HTTP {resp.status}: {doc}")
        return doc


async def enroll_with_tokens(http: aiohttp.ClientSession, cloud: DemoCloud, admin: AdminLogin,
                             hubs: list[DemoHub], site_id: str, site_name: str) -> str:
    """Sign in, create the site and a token per hub, ``mchub edge enroll`` every hub."""
    from edge import identity

    session = await _api(http, cloud, "/login", {"username": admin.username, "password": admin.password,
                                                 "code": admin.use()})
    token = str(session["token"])
    await _api(http, cloud, "/sites", {"site_id": site_id, "name": site_name}, token)
    for hub in hubs:
        made = await _api(http, cloud, "/tokens", {"site_id": site_id, "expires_in_s": 3600}, token)
        await run_command([sys.executable, "-m", "mchub", "edge", "enroll", "--cloud", hub.cloud_url,
                           "--token", str(made["token"]), "--serial", f"demo-{hub.label}",
                           "--config", str(hub.config)], hub.directory, f"mchub edge enroll ({hub.label})")
        hub.hub_id = identity.load(hub.directory / "identity").hub_id
    return "enrolled with one-time tokens (`mchub edge enroll`)"
