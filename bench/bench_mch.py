"""MCH case assembly and upload throughput on the embedded database (SQLite).

* first build: ``backfill`` of N subjects, each with a hub visit and three screening
  results (HPV, TBS, ultrasound BI-RADS) -> two new case versions per subject;
* re-assembly of the same data (``--restart``): rebuilt, compared, nothing stored —
  the steady-state cost of the change-feed sweep. Baseline: the first build; the ratio
  says how much cheaper an unchanged sweep is;
* uploads: the queued records sent to the platform simulator over loopback HTTP
  (signed, client rate limit set high), records per second.

    .venv/bin/python bench/bench_mch.py [--subjects 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datetime as dt

import msgspec
import uvicorn

from bench.common import machine
from cloud.config import parse
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.mch import assembler, uploader
from cloud.mch.profiles import reference_profile
from firmware_sim.mch_platform import Platform
from mchub.procs import free_port

T0 = 1_762_000_000_000  # 2025-11-01


async def _fill(db: Database, n: int) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO sites (site_id, created_ms) VALUES ('S1', 0)")
        await tx.execute("INSERT INTO hubs (hub_id, site_id, created_ms) VALUES ('H1', 'S1', 0)")
        for i in range(n):
            sid = await tx.fetchval("INSERT INTO subjects (sex, birth_date, created_ms, updated_ms) "
                                    "VALUES ('2', '1980-01-01', 0, 0) RETURNING id")
            await tx.execute("INSERT INTO sessions (hub_id, session_id, epoch, seq, station_id, subject_id, "
                             "opened_ms) VALUES ('H1', $1, 1, $2, 'ST1', $3, $4)", f"s{i}", i, sid, T0)
            for kind, code, value, payload in (("hpv", "30167-1", "阴性", {}),
                                               ("cytology", "47527-7", "NILM", {"loinc": "47527-7"}),
                                               ("birads", "BIRADS-US", "2", {})):
                await tx.execute("INSERT INTO results (subject_id, source, source_key, kind, code, value, "
                                 "observed_ms, payload, created_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                                 sid, "dicom" if kind == "birads" else "hl7", f"{i}/{kind}", kind, code, value,
                                 T0 + 86_400_000, msgspec.json.encode(payload).decode(), T0)


async def _run(subjects: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.connect(f"sqlite:///{tmp}/c.db")
        await migrate(db)
        await _fill(db, subjects)
        ctx = assembler.Context(reference_profile(), today=lambda: dt.date(2026, 11, 20))
        start = time.perf_counter()
        report = await assembler.backfill(db, ctx, dt.date(2025, 1, 1))
        out["first build subjects/s (baseline)"] = subjects / (time.perf_counter() - start)
        out["first build case versions/s"] = report.versions / (time.perf_counter() - start)
        start = time.perf_counter()
        await assembler.backfill(db, ctx, dt.date(2025, 1, 1), restart=True)
        out["unchanged re-assembly subjects/s"] = subjects / (time.perf_counter() - start)
        platform, port = Platform(rate_per_s=100_000), free_port()
        server = uvicorn.Server(uvicorn.Config(platform.app, host="127.0.0.1", port=port, log_level="warning"))
        task = asyncio.create_task(server.serve())
        while not server.started:  # noqa: ASYNC110 - uvicorn offers no start event
            await asyncio.sleep(0.01)
        await asyncio.to_thread(Path(tmp, "secret").write_text, "platform-secret")
        cfg = parse(f'[mch]\nplatform_url = "http://127.0.0.1:{port}"\napp_key = "mchub"\nsecret_file = "secret"\n'
                    'rate_per_s = 100000\n', Path(tmp, "cloud.toml"))
        start = time.perf_counter()
        sent = await uploader.drain(db, cfg, reference_profile(), say=lambda _: None)
        out["uploads/s (loopback, signed)"] = sent / (time.perf_counter() - start)
        server.should_exit = True
        await task
        await db.close()
    return out


def run(subjects: int = 200) -> dict[str, float]:
    """Measure and return the figures (also used by ``mchub bench``)."""
    return asyncio.run(_run(subjects))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=300)
    args = parser.parse_args()
    print(machine())
    results = run(args.subjects)
    for name, value in results.items():
        print(f"{name:40s} {value:12,.1f}")
    ratio = results["unchanged re-assembly subjects/s"] / results["first build subjects/s (baseline)"]
    print(f"unchanged sweep vs first build: {ratio:.2f}x faster")


if __name__ == "__main__":
    main()
