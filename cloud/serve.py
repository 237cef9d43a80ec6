"""``mchub cloud serve``: migrate once, then run N uvicorn worker processes.

Workers share nothing but the database (and the MQTT broker): each opens its own pool.
``PROMETHEUS_MULTIPROC_DIR`` is set for them so /metrics on any worker adds up every
worker's counters. With one worker uvicorn runs in this process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile

import uvicorn

from cloud import logs
from cloud.config import CloudConfig
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.keystore import load_keys


async def migrate_database(cfg: CloudConfig) -> list[str]:
    """Apply pending migrations; returns what was applied."""
    db = await Database.connect(cfg.database.url, 2)
    try:
        return await migrate(db)
    finally:
        await db.close()


def serve(cfg: CloudConfig, workers: int | None = None, host: str | None = None, port: int | None = None) -> int:
    """Run the server until interrupted; returns an exit code."""
    logs.setup(cfg.logging.level, cfg.logging.json)
    load_keys(cfg.keys_dir)  # fail here, once, with a clear message, not in every worker
    asyncio.run(migrate_database(cfg))
    n = workers or cfg.server.workers
    prom_dir = tempfile.mkdtemp(prefix="mchub-cloud-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = prom_dir
    os.environ["MCHUB_CLOUD_CONFIG"] = str(cfg.path)
    try:
        uvicorn.run("cloud.app:app_from_env", factory=True, host=host or cfg.server.host,
                    port=port or cfg.server.port, workers=n, log_config=None, access_log=False,
                    timeout_graceful_shutdown=10)
    finally:
        shutil.rmtree(prom_dir, ignore_errors=True)
    return 0
