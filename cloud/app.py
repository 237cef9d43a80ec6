"""The ASGI application (Starlette) of one cloud worker.

``build_app(config)`` is used by tests and by ``mchub cloud serve``; uvicorn's worker
processes call :func:`app_from_env`, which reads the config path from
``MCHUB_CLOUD_CONFIG``. On start a worker opens the database, applies pending migrations
(serialised by an advisory lock), starts tortoise, loads the key directory and, when
``[mqtt] enabled``, the hub presence listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cloud import admin_api, audit_chain, logs, metrics, outbox, web
from cloud import config as config_mod
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.db.orm import start_orm, stop_orm
from cloud.errors import CloudError
from cloud.fleet import api as fleet_api
from cloud.fleet import presence
from cloud.ingest import Ingestor, Limits
from cloud.integration.service import Integration
from cloud.keystore import CloudKeys, load_keys
from cloud.openapi import document

log = logging.getLogger("mchub.cloud.app")


@dataclass
class CloudState:
    """What a worker holds while it runs (``request.app.state.cloud``)."""

    config: config_mod.CloudConfig
    db: Database
    keys: CloudKeys
    ingestor: Ingestor
    admin_token: str | None


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None when it exceeds ``limit`` (checked before reading it all)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def post_batch(request: Request) -> Response:
    """POST /api/v1/batches: docs/protocol.md §2."""
    state: CloudState = request.app.state.cloud
    ing = state.ingestor
    body = await _read_body(request, ing.limits.max_batch_bytes + 4096)
    if body is None:
        metrics.REJECTS.labels("too_large").inc()
        answer = ing.refusal("too_large", f"batch exceeds the limit of {ing.limits.max_batch_bytes} bytes; split it")
    else:
        answer = await ing.handle(body, peer=request.client.host if request.client else "")
        answer.headers.update(await fleet_api.batch_headers(request, body, answer.status))
    return Response(answer.body, answer.status, headers=answer.headers, media_type=answer.content_type)


async def get_keys(request: Request) -> Response:
    """GET /api/v1/keys: the cloud's public keys."""
    return JSONResponse(request.app.state.cloud.keys.public_document())


async def healthz(request: Request) -> Response:
    """GET /healthz: the process answers."""
    return JSONResponse({"ok": True})


async def readyz(request: Request) -> Response:
    """GET /readyz: the database answers and is migrated."""
    try:
        async with request.app.state.cloud.db.transaction() as tx:
            version = await tx.fetchval("SELECT MAX(version) FROM schema_migrations")
    except CloudError as exc:
        return JSONResponse({"ready": False, "reason": str(exc)}, 503)
    return JSONResponse({"ready": True, "schema_version": version})


async def get_metrics(request: Request) -> Response:
    """GET /metrics: Prometheus text, with queue depths and hub presence from the database."""
    gauges: dict[str, tuple[str, dict[tuple[str, ...], float], tuple[str, ...]]] = {}
    try:
        async with request.app.state.cloud.db.transaction() as tx:
            depth = await outbox.depths(tx)
            hubs = await tx.fetch("SELECT status, online, COUNT(*) AS n, SUM(COALESCE(queue_depth, 0)) AS q "
                                  "FROM hubs GROUP BY status, online")
        waiting = {(t, s): 0.0 for t in outbox.OUTBOUND_TOPICS for s in ("pending", "dead")}  # 0, not absent
        waiting.update({k: float(v) for k, v in depth.items()})
        gauges["mchub_outbox_messages"] = ("Outbound messages not yet delivered, by topic and status",
                                           waiting, ("topic", "status"))
        gauges["mchub_hubs"] = ("Registered hubs by status and presence",
                                {(r["status"], "true" if r["online"] else "false"): float(r["n"]) for r in hubs},
                                ("status", "online"))
        gauges["mchub_hub_queue_depth"] = ("Records waiting on hubs (sum of reported queue depths)",
                                           {(): float(sum(r["q"] or 0 for r in hubs))}, ())
    except CloudError as exc:
        log.warning("metrics: database gauges unavailable: %s", exc)
    return Response(metrics.render(gauges), media_type=metrics.CONTENT_TYPE)


async def openapi(request: Request) -> Response:
    """GET /openapi.json."""
    return JSONResponse(document())


async def start_state(cfg: config_mod.CloudConfig) -> CloudState:
    """Open everything a worker needs."""
    keys = load_keys(cfg.keys_dir)
    db = await Database.connect(cfg.database.url, cfg.database.pool_size)
    await migrate(db)
    await start_orm(cfg.database.url)
    s = cfg.server
    ing = Ingestor(db, keys, Limits(s.max_batch_bytes, s.max_inflight, s.max_queue, s.retry_after_s))
    return CloudState(cfg, db, keys, ing, cfg.admin_token())


def build_app(cfg: config_mod.CloudConfig) -> Starlette:
    """The ASGI app for ``cfg``."""
    hospital = Integration(cfg)  # STOW-RS + /integration/v1 here; MLLP/SCP/dispatchers in the owner process

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state = await start_state(cfg)
        app.state.cloud = state
        app.state.fleet = fleet_api.start(state)
        tasks: list[asyncio.Task[None]] = []
        stop = asyncio.Event()
        if cfg.mqtt.enabled:
            from cloud.mqtt import run_listener

            tasks.append(asyncio.create_task(run_listener(state.db, cfg.mqtt.host, cfg.mqtt.port, stop,
                                                             int(cfg.fleet.presence_window_s * 1000))))
        tasks.append(asyncio.create_task(web.run_sampler(state.db, stop)))
        tasks.append(asyncio.create_task(presence.run_sweeper(state.db, cfg.fleet.presence_window_s, stop)))
        await hospital.start(state.db, state.keys)
        app.state.integration = hospital
        if cfg.mch.enabled:
            from cloud.mch import service as mch_service

            tasks += mch_service.start(state.db, cfg, stop)
        a = cfg.audit
        tasks.append(asyncio.create_task(audit_chain.run(state.db, a.seal_interval_s, a.retention_days,
                                                         a.prune_interval_s, stop)))
        log.info("cloud worker ready (database %s, pid %d)", state.db.dialect, os.getpid())
        try:
            yield
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await hospital.stop()
            await stop_orm()
            await state.db.close()

    routes = [
        Route("/api/v1/batches", post_batch, methods=["POST"]),
        Route("/api/v1/keys", get_keys),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", get_metrics),
        Route("/openapi.json", openapi),
        *admin_api.routes(),
        *fleet_api.routes(),
        *web.routes(cfg),
        *hospital.routes(),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def app_from_env() -> Starlette:
    """uvicorn factory for worker processes: config path from ``MCHUB_CLOUD_CONFIG``."""
    cfg = config_mod.load(os.environ["MCHUB_CLOUD_CONFIG"])
    logs.setup(cfg.logging.level, cfg.logging.json)
    return build_app(cfg)
