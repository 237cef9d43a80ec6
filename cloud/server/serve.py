"""``mchub cloud serve``: migrate once, then run N uvicorn worker processes.

Workers share nothing but the database (and the MQTT broker): each opens its own pool.
``PROMETHEUS_MULTIPROC_DIR`` is set for them so /metrics on any worker adds up every
worker's counters. With one worker uvicorn runs in this process.

Hospital integration (MLLP listener, DICOM C-STORE SCP, HL7 processing, HIS dispatcher)
binds ports, so exactly one process owns it (cloud/integration/service.py): the worker
itself when there is one; with several, one extra ``mchub cloud integrate`` process
started here; with ``integrate=False`` none (run ``mchub cloud integrate`` elsewhere).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import uvicorn

from cloud.config import CloudConfig
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.intake.keystore import load_keys
from cloud.integration.service import ROLE_ENV
from cloud.server import logs


def uvicorn_options(cfg: CloudConfig) -> dict[str, Any]:
    """The doors of every worker (``[http]``, docs/deployment.md): the guarded protocol
    (connection limits, header and request deadlines; its limits are set by
    :func:`cloud.server.app.build_app` in each worker) and the proxies trusted for X-Forwarded-For."""
    return {"http": "webui.conn_guard:GuardedH11Protocol", "proxy_headers": True,
            "forwarded_allow_ips": cfg.http.forwarded_allow_ips, "timeout_keep_alive": 5}


async def migrate_database(cfg: CloudConfig) -> list[str]:
    """Apply pending migrations; returns what was applied."""
    db = await Database.connect(cfg.database.url, 2)
    try:
        return await migrate(db)
    finally:
        await db.close()


METRICS_PREFIX = "mchub-cloud-metrics-"


def metrics_dir() -> str:
    """A new ``PROMETHEUS_MULTIPROC_DIR`` named for this process; first removes those a killed server
    left (its pid is gone). Under systemd ``PrivateTmp`` clears them anyway; a demo, a test run or a
    server started by hand and SIGKILLed left one per start in /tmp."""
    for old in Path(tempfile.gettempdir()).glob(f"{METRICS_PREFIX}*"):
        pid = old.name[len(METRICS_PREFIX):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(old, ignore_errors=True)
        except PermissionError:  # another user's running server
            pass
    return tempfile.mkdtemp(prefix=f"{METRICS_PREFIX}{os.getpid()}-")


def serve(cfg: CloudConfig, workers: int | None = None, host: str | None = None, port: int | None = None,
          integrate: bool = True) -> int:
    """Run the server until interrupted; returns an exit code."""
    logs.setup(cfg.logging.level, cfg.logging.json)
    load_keys(cfg.keys_dir)  # fail here, once, with a clear message, not in every worker
    asyncio.run(migrate_database(cfg))
    n = workers or cfg.server.workers
    prom_dir = metrics_dir()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = prom_dir
    os.environ["MCHUB_CLOUD_CONFIG"] = str(cfg.path)
    os.environ[ROLE_ENV] = "worker" if n == 1 and integrate else "external"
    owner = None
    if n > 1 and integrate:
        owner = subprocess.Popen([sys.executable, "-m", "mchub", "cloud", "integrate", "--config", str(cfg.path)])
    try:
        uvicorn.run("cloud.server.app:app_from_env", factory=True, host=host or cfg.server.host,
                    port=port or cfg.server.port, workers=n, log_config=None, access_log=False,
                    timeout_graceful_shutdown=10, **uvicorn_options(cfg))
    finally:
        if owner is not None:
            owner.terminate()
            try:
                owner.wait(15)
            except subprocess.TimeoutExpired:
                owner.kill()
        shutil.rmtree(prom_dir, ignore_errors=True)
    return 0
