"""Profile one cloud worker's ingest path in-process (no HTTP): where does a batch's time go?

    .venv/bin/python -m bench.profile_ingest                       # timing per stage only
    .venv/bin/python -m bench.profile_ingest --pyinstrument        # call tree (pip install pyinstrument)
    .venv/bin/python -m bench.profile_ingest --visits --batches 2000   # small fleet-like batches
    py-spy record -o ingest.svg -- .venv/bin/python -m bench.profile_ingest --batches 400

It starts a throwaway PostgreSQL, registers a few hubs, seals batches of blood-pressure
readings (as bench_ingest does) and feeds them to :meth:`cloud.intake.ingest.Ingestor.handle`
one after another, then prints readings/s and the CPU time of this process and of
PostgreSQL. docs/cloud.md records what the profiles showed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

from bench.bench_ingest import _postmaster_pid, _readings, _tree_cpu_s
from bench.common import machine
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.intake.ingest import Ingestor
from cloud.intake.keystore import init_keys
from cloud.records.crypto_at_rest import AtRest  # noqa: F401 - imported so the profile excludes import time
from firmware_sim.fleet import CloudKeys, VirtualHub
from protocol.keys import ed25519_raw, key_id
from tests.support.services import PostgresServer


async def _register(db: Database, hubs: list[VirtualHub]) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO sites (site_id, name, created_ms) VALUES ('bench', '', 0)")
        for h in hubs:
            raw = ed25519_raw(h.key.public_key())
            await tx.execute("INSERT INTO hubs (hub_id, site_id, name, status, online, created_ms) "
                             "VALUES ($1, 'bench', '', 'active', false, 0)", h.hub_id)
            await tx.execute("INSERT INTO hub_keys (hub_id, key_id, public_key, valid_from_ms, created_ms) "
                             "VALUES ($1, $2, $3, 0, 0)", h.hub_id, key_id(raw).hex(), raw)


async def run(args: argparse.Namespace, pg: PostgresServer, base: Path) -> None:
    dsn = pg.create_database("profile")
    keys = init_keys(base / "keys")
    db = await Database.connect(dsn, 4)
    await migrate(db)
    pub = CloudKeys(next(iter(keys.published.values())), keys.signing.public_key())
    hubs = [VirtualHub(f"PR{i:03d}", pub, random.Random(i)) for i in range(args.hubs)]
    await _register(db, hubs)
    per_hub = args.batches // args.hubs * args.batch
    batches: list[bytes] = []
    if args.visits:  # what the fleet sends: one visit (ID card, 4 readings, close) per batch
        for _ in range(args.batches // args.hubs):
            batches += [h.seal_from(h.add_visit()[0].seq) for h in hubs]  # type: ignore[misc]
    else:
        for h in hubs:
            _readings(h, per_hub)
        for start in range(1, per_hub + 1, args.batch):
            batches += [h.seal_from(start, args.batch) for h in hubs]  # type: ignore[misc]
    ing = Ingestor(db, keys)
    await ing.handle(batches[0])  # warm up: partitions, prepared statements
    profiler = None
    if args.pyinstrument:
        import pyinstrument

        profiler = pyinstrument.Profiler(async_mode="disabled")
        profiler.start()
    cpu0, pg0, t0 = time.process_time(), _tree_cpu_s(_postmaster_pid(pg)), time.perf_counter()
    for b in batches[1:]:
        answer = await ing.handle(b)
        assert answer.status == 200, answer.body
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    pg_cpu = _tree_cpu_s(_postmaster_pid(pg)) - pg0
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    n = (len(batches) - 1) * (4 if args.visits else args.batch)
    print(f"in-process ingest ({machine()}; load average {os.getloadavg()[0]:.1f})")
    what = "one visit (6 records)" if args.visits else args.batch
    print(f"  {n:,} readings in batches of {what}: {n / wall:,.0f} readings/s wall, "
          f"{n / cpu:,.0f} readings per CPU-second of the worker")
    print(f"  per batch: worker CPU {cpu * 1000 / (len(batches) - 1):.1f} ms, "
          f"PostgreSQL CPU {pg_cpu * 1000 / (len(batches) - 1):.1f} ms")
    await db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hubs", type=int, default=4)
    ap.add_argument("--batches", type=int, default=80, help="batches in all (default 80)")
    ap.add_argument("--batch", type=int, default=2000, help="readings per batch (default 2000)")
    ap.add_argument("--visits", action="store_true", help="fleet-like batches: one visit each (6 records)")
    ap.add_argument("--pyinstrument", action="store_true", help="print a pyinstrument call tree")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="mchub-profile-"))
    base.chmod(0o755)
    pg = PostgresServer(base / "pg", durable=True).start()
    try:
        asyncio.run(run(args, pg, base))
    finally:
        pg.destroy()


if __name__ == "__main__":
    main()
