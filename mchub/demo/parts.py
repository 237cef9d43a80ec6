"""Which parts this build has, so the demo runs what exists and names what does not.

Each check looks for the module or configuration key the part adds; nothing is guessed
from version numbers. The demo's own settings for a part live here too.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util

STAFF_USER = "nurse"
STAFF_PIN = "2468"


def hub_pages() -> bool:
    """The hub serves the kiosk and the staff status page (``[[web.users]]`` in hub.toml)."""
    config = importlib.import_module("edge.config")
    web = getattr(config, "WebConfig", None)
    return web is not None and "users" in {f.name for f in dataclasses.fields(web)}


def cloud_pages() -> bool:
    """The cloud serves the dashboard and the admin console (``[web]`` in cloud.toml, ``cloud.web``)."""
    sections = getattr(importlib.import_module("cloud.config"), "_SECTIONS", {})
    return "web" in sections and importlib.util.find_spec("cloud.web") is not None


def hub_web_toml() -> str:
    """The lines after ``[web]`` bind/port: plain-HTTP cookies on loopback and the demo nurse."""
    if not hub_pages():
        return ""
    from provisioning.auth import hash_password

    return (f'secure_cookie = false\n\n[[web.users]]\nname = "{STAFF_USER}"\n'
            f'secret_hash = "{hash_password(STAFF_PIN)}"\n')


def cloud_web_toml() -> str:
    """``[web]`` for the cloud: plain-HTTP cookies on loopback."""
    return "\n[web]\nsecure_cookie = false\n" if cloud_pages() else ""
