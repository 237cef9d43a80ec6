"""Provisioning on the cloud database: run with ``.venv/bin/python bench/bench_fleet.py``.

* enrollment through :class:`cloud.fleet.service.Fleet` (one transaction: token, hub, key,
  audit, configuration) on SQLite and on a throwaway PostgreSQL — sizes a city-wide
  re-enrollment (1,100 hubs) — against the CPU-only figure of bench_provisioning.py;
* what each accepted batch now costs extra: the ``X-Mchub-Config-Version`` lookup (one
  primary-key read), against the signer-key lookup ingest already does per batch (baseline).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric import ed25519

from bench.common import machine
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.fleet.registry import lookup_signer
from cloud.fleet.service import Fleet
from cloud.fleet.stores import sql_stores
from protocol.ids import now_ms
from protocol.keys import RecipientPrivate, SuiteId, signing_key_id
from provisioning.authority import Authority
from provisioning.bundle import CloudKeys
from provisioning.ca import FleetCA
from provisioning.enrollment import build_request

HUBS = 200


async def one_database(url: str, label: str) -> dict[str, float]:
    db = await Database.connect(url)
    await migrate(db)
    signing = ed25519.Ed25519PrivateKey.generate()
    recipient = RecipientPrivate.generate(SuiteId.X25519_AES256GCM)
    ca = FleetCA.create("bench CA", now_ms=now_ms())
    authority = Authority.build(ca, CloudKeys((recipient.public(),), signing.public_key()), signing,
                                mqtt_url="mqtt://x", now_ms=now_ms())
    fleet = Fleet(db, authority, signing)
    requests = []
    for i in range(HUBS):  # one hub per clinic, as in a city's 1,100 sites
        await fleet.add_site("bench", f"s{i}", "site")
        key = ed25519.Ed25519PrivateKey.generate()
        requests.append((key, build_request(key, (await fleet.create_token("bench", f"s{i}")).text, f"PI-{i}")))
    start = time.perf_counter()
    for _, request in requests:
        await fleet.enroll(request)
    per_s = HUBS / (time.perf_counter() - start)
    print(f"{label}: enrollment (one transaction)          {per_s:10,.0f} /s  ({1e3 / per_s:6.2f} ms each; "
          f"1,100 hubs in {1100 / per_s:5.1f} s)")
    kid = signing_key_id(requests[-1][0].public_key())
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        await lookup_signer(db, f"s{HUBS - 1}-h01", kid, now_ms())
    signer_s = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in range(n):
        await db.fetchrow("SELECT version FROM hub_config_versions WHERE hub_id = $1", f"s{HUBS - 1}-h01")
    version_s = n / (time.perf_counter() - start)
    print(f"{label}: per batch: config-version lookup       {version_s:10,.0f} /s  ({1e6 / version_s:6.0f} µs)")
    print(f"{label}: baseline: signer-key lookup (ingest)     {signer_s:10,.0f} /s  ({1e6 / signer_s:6.0f} µs)  "
          f"ratio {signer_s / version_s:4.2f}x of the baseline's time")
    assert len(await sql_stores(db).hubs.list()) == HUBS
    await db.close()
    return {f"{label} enrollments/s": per_s, f"{label} config-version lookups/s": version_s,
            f"{label} signer lookups/s": signer_s}


async def measure() -> dict[str, float]:
    """Every figure, on SQLite and on a throwaway PostgreSQL."""
    from tests.support.services import PostgresServer

    print(machine())
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        out.update(await one_database(f"sqlite:///{d}/bench.db", "SQLite    "))
        os.chmod(d, 0o755)  # PostgreSQL runs as its own user when we are root
        pg = PostgresServer(Path(d) / "pg", durable=True).start()
        try:
            out.update(await one_database(pg.create_database("bench_fleet"), "PostgreSQL"))
        finally:
            pg.destroy()
    return out


def run() -> dict[str, float]:
    """Figures for ``mchub bench``."""
    return asyncio.run(measure())


if __name__ == "__main__":
    run()
