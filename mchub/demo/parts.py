"""Which parts this build has, so the demo runs what exists and names what does not.

Each check looks for the module or configuration key the part adds; nothing is guessed
from version numbers. The demo's own settings for a part live here too.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

STAFF_USER = "nurse"
STAFF_PIN = "246813"  #: staff PINs have at least 6 digits (edge.staff_secrets)


def hub_pages() -> bool:
    """The hub serves the kiosk and the staff status page (``[[web.users]]`` in hub.toml)."""
    config = importlib.import_module("edge.config")
    web = getattr(config, "WebConfig", None)
    return web is not None and "users" in getattr(web, "__struct_fields__", ())


def cloud_pages() -> bool:
    """The cloud serves the dashboard and the admin console (``[web]`` in cloud.toml, ``cloud.web``)."""
    sections = getattr(importlib.import_module("cloud.config"), "SECTIONS", ())
    return "web" in sections and importlib.util.find_spec("cloud.web") is not None


def hub_web_toml(directory: Path) -> str:
    """The lines after ``[web]`` bind/port: plain-HTTP cookies on loopback and the demo nurse, whose
    PIN hash is written to its own 0600 file in the hub's ``directory``."""
    if not hub_pages():
        return ""
    from edge.staff_secrets import SECRETS_DIR, write_secret_file
    from provisioning.auth import hash_password

    write_secret_file(directory / SECRETS_DIR / f"{STAFF_USER}.pin", hash_password(STAFF_PIN))
    return (f'secure_cookie = false\n\n[[web.users]]\nname = "{STAFF_USER}"\n'
            f'secret_file = "{SECRETS_DIR}/{STAFF_USER}.pin"\n')


def cloud_web_toml() -> str:
    """``[web]`` for the cloud: plain-HTTP cookies on loopback."""
    return "\n[web]\nsecure_cookie = false\n" if cloud_pages() else ""
