"""Putting the demo's hubs on the cloud: a site, then each hub's identity and registration.

Until hub enrollment with a one-time token (``mchub edge enroll``) is in this build, the
demo does what an installer does by hand (docs/edge.md): save the cloud's key document,
``edge init`` the identity, and register the hub's public key through the admin API.
"""

from __future__ import annotations

import aiohttp

from edge import identity
from mchub.demo.cloudside import DemoCloud, DemoError
from mchub.demo.hubside import DemoHub

SITE_ID = "demo-site"
SITE_NAME = "演示卫生院 Demo clinic"


async def ensure_empty(http: aiohttp.ClientSession, cloud: DemoCloud) -> None:
    """Refuse a cloud database that already holds hubs (e.g. a second run on the same PostgreSQL)."""
    existing = (await cloud.admin(http, "GET", "/admin/v1/hubs")).get("hubs", [])
    if existing:
        raise DemoError(f"the cloud database {cloud.database_url} already holds {len(existing)} hub(s), e.g. "
                        f"{existing[0].get('hub_id')!r}; the demo needs an empty one (e.g. `createdb mchub_demo2` "
                        "and --postgres postgresql://.../mchub_demo2)")


async def enroll_hubs(http: aiohttp.ClientSession, cloud: DemoCloud, hubs: list[DemoHub]) -> str:
    """Create the site and register every hub; returns how it was done (for the display)."""
    await cloud.admin(http, "POST", "/admin/v1/sites", {"site_id": SITE_ID, "name": SITE_NAME})
    keys = await cloud.keys_document(http)
    entries = []
    for hub in hubs:
        hub.directory.mkdir(parents=True, exist_ok=True)
        key_file = hub.directory / "cloud-keys.json"
        key_file.write_bytes(keys)
        ident = identity.init(hub.directory / "identity", hub.hub_id, key_file)
        entries.append({"hub_id": hub.hub_id, "site_id": SITE_ID, "public_key": ident.public_hex})
    await cloud.admin(http, "POST", "/admin/v1/hubs", {"hubs": entries})
    return "registered through the admin API (token enrollment: 尚未提供 not yet available in this build)"
