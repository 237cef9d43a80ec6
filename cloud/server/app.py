"""The ASGI application (Starlette) of one cloud worker.

``build_app(config)`` is used by tests and by ``mchub cloud serve``; uvicorn's worker
processes call :func:`app_from_env`, which reads the config path from
``MCHUB_CLOUD_CONFIG``. On start a worker opens the database, applies pending migrations
(serialised by an advisory lock), loads the key directory and, when ``[mqtt] enabled``,
the hub presence listener. The worker's one database pool (:class:`cloud.db.engine.Database`)
serves every request and task: there is no other database layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cloud import config as config_mod
from cloud import outbox, web
from cloud.audit import RefusalTally
from cloud.audit import chain as audit_chain
from cloud.audit.refusals import RefusalAudit
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.errors import CloudError, DatabaseUnavailable
from cloud.fleet import admin_api, presence
from cloud.fleet import api as fleet_api
from cloud.intake.ingest import Answer, Ingestor, Limits
from cloud.intake.keystore import CloudKeys, load_keys
from cloud.integration.service import Integration
from cloud.server import logs, metrics
from cloud.server.gc_freeze import freeze_startup
from cloud.server.openapi import document
from protocol.envelope import HEADER_PREFIX_MAX
from webui import conn_guard
from webui.body_limit import BodyLimit, Cap
from webui.log_limit import quiet_accept_errors

log = logging.getLogger("mchub.cloud.app")
#: on a 200 batch answer: the hub's configuration version, so the hub fetches a newer one
#: (read in the batch's own store transaction, cloud/intake/ingest.py)
CONFIG_VERSION_HEADER = "X-Mchub-Config-Version"


@dataclass
class CloudState:
    """What a worker holds while it runs (``request.app.state.cloud``)."""

    config: config_mod.CloudConfig
    db: Database
    keys: CloudKeys
    ingestor: Ingestor
    admin_token: str | None
    metrics_token: str | None = None


async def _receive_batch(request: Request, ing: Ingestor, peer: str) -> Answer:
    """Read a batch inside an ingest slot: its header first (refused before the rest is read
    when it is malformed or names no valid hub and key), then the rest, within the declared length."""
    declared = request.headers.get("content-length", "0")
    total = int(declared) if declared.isdigit() else 0
    prefix_len = min(total, HEADER_PREFIX_MAX)
    body = bytearray()
    checked = False
    async for chunk in request.stream():
        body += chunk
        if len(body) > total:
            return ing.refusal("malformed", f"body longer than its Content-Length of {total} bytes")
        if not checked and len(body) >= prefix_len:
            if (refused := await ing.check_header(bytes(body[:prefix_len]), total, peer=peer)) is not None:
                return refused
            checked = True
    data = bytes(body)
    if not checked or len(data) != total:
        return await ing.check_header(data, len(data), peer=peer) or ing.refusal(
            "malformed", f"body of {len(data)} bytes, but Content-Length said {total}")
    return await ing.handle_admitted(data, peer=peer, seen=presence.Report.from_headers(request.headers))


async def post_batch(request: Request) -> Response:
    """POST /api/v1/batches: docs/protocol.md §2. The ingest slot is taken before the body is read."""
    state: CloudState = request.app.state.cloud
    ing = state.ingestor
    peer = request.client.host if request.client else ""
    async with ing.admitted() as admitted:
        answer = await _receive_batch(request, ing, peer) if admitted else ing.overloaded()
    if answer.status == 200 and answer.config_version is not None:  # the hub fetches a newer configuration
        answer.headers[CONFIG_VERSION_HEADER] = str(answer.config_version)
    request.state.refusal = answer.reason
    request.state.refusal_audited = answer.audited
    request.state.refusal_hub = answer.hub_id
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


def _metrics_allowed(request: Request) -> bool:
    """/metrics: the bearer token of ``[http] metrics_token_file``; without one, loopback clients only."""
    token = request.app.state.cloud.metrics_token
    if token is None:
        try:
            address = ipaddress.ip_address(request.client.host if request.client else "")
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 on a dual-stack listener
        return bool((mapped or address).is_loopback)
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return hmac.compare_digest(given.encode(), token.encode())


async def get_metrics(request: Request) -> Response:
    """GET /metrics: Prometheus text, with queue depths and hub presence from the database."""
    if not _metrics_allowed(request):
        request.state.refusal = "unauthenticated"
        return JSONResponse({"reason": "unauthenticated", "message": "/metrics needs the bearer token of "
                             "[http] metrics_token_file (without one: loopback clients only)"}, 401,
                            headers={"WWW-Authenticate": "Bearer"})
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
    s = cfg.server
    ing = Ingestor(db, keys, Limits(s.max_batch_bytes, s.max_inflight, s.max_queue, s.retry_after_s))
    return CloudState(cfg, db, keys, ing, cfg.admin_token(), cfg.metrics_token())


async def _busy(request: Request, exc: Exception) -> Response:
    """A database that stayed locked or unreachable past its wait (SQLite busy timeout, a lost
    PostgreSQL pool): 503 with Retry-After, never 500."""
    log.warning("database busy in %s %s: %s", request.method, request.url.path, exc)
    retry = str(request.app.state.cloud.config.server.retry_after_s)
    request.state.refusal = "unavailable"
    return JSONResponse({"reason": "unavailable", "message": "the database is busy; retry after the given seconds"},
                        503, headers={"Retry-After": retry})


def _count(path: str, reason: str) -> None:
    """Batches refused by the body cap count in ``mchub_rejects_total`` like the ingest's own."""
    if path.startswith("/api/v1/batches") and reason == "too_large":
        metrics.REJECTS.labels("too_large").inc()


def body_caps(cfg: config_mod.CloudConfig) -> list[Cap]:
    """Per-route body caps (docs/reliability.md): batches as configured, enrolment and the
    provisioning API 64 kB, STOW-RS ``[dicom] max_body_mb``; others ``[http] max_body_bytes``."""
    return [Cap("/api/v1/batches", cfg.server.max_batch_bytes, length_required=True),
            Cap("/api/v1/", fleet_api.MAX_BODY),
            Cap("/dicomweb/", cfg.dicom.max_body_bytes)]


def build_app(cfg: config_mod.CloudConfig) -> Starlette:
    """The ASGI app for ``cfg``."""
    hospital = Integration(cfg)  # STOW-RS + /integration/v1 here; MLLP/SCP/dispatchers in the owner process
    tally = RefusalTally(window_s=cfg.http.refusal_window_s)
    h = cfg.http
    conn_guard.configure(conn_guard.ConnLimits(  # used when served with cloud.server.serve.uvicorn_options
        max_connections=h.max_connections, max_per_source=h.max_connections_per_ip,
        header_timeout_s=h.header_timeout_s, request_timeout_s=h.request_timeout_s,
        exempt=conn_guard.exempt_from(h.forwarded_allow_ips),
        on_refusal=lambda source, reason: tally.note(source, "(connection)", reason, 503)))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        quiet_accept_errors(asyncio.get_running_loop())  # EMFILE: one line a minute, no traceback
        state = await start_state(cfg)
        app.state.cloud = state
        app.state.fleet = fleet_api.start(state)
        tasks: list[asyncio.Task[None]] = []
        stop = asyncio.Event()
        if cfg.mqtt.enabled:
            from cloud.fleet.mqtt import run_listener

            tasks.append(asyncio.create_task(run_listener(state.db, cfg.mqtt.host, cfg.mqtt.port, stop,
                                                             int(cfg.fleet.presence_window_s * 1000))))
        tasks.append(asyncio.create_task(web.run_sampler(state.db, stop)))
        tasks.append(asyncio.create_task(presence.run_sweeper(state.db, cfg.fleet.presence_window_s, stop)))
        tallying = asyncio.create_task(tally.run(state.db, stop))
        app.state.refusals = tally
        await hospital.start(state.db, state.keys)
        app.state.integration = hospital
        if cfg.mch.enabled:
            from cloud.mch import service as mch_service

            tasks += mch_service.start(state.db, cfg, stop)
        a = cfg.audit
        tasks.append(asyncio.create_task(audit_chain.run(state.db, a.seal_interval_s, a.retention_days,
                                                         a.prune_interval_s, stop)))
        freeze_startup()
        log.info("cloud worker ready (database %s, pid %d)", state.db.dialect, os.getpid())
        try:
            yield
        finally:
            stop.set()
            for t in tasks:
                t.cancel()
            await asyncio.gather(tallying, *tasks, return_exceptions=True)  # the tally ends with a flush, not cancelled
            await tally.flush(state.db)  # what a failed last flush kept, and any refusal since: a clean stop loses none
            await hospital.stop()
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
    middleware = [Middleware(RefusalAudit, tally=tally),
                  Middleware(BodyLimit, caps=body_caps(cfg), default=cfg.http.max_body_bytes, on_refusal=_count)]
    return Starlette(routes=routes, lifespan=lifespan, middleware=middleware,
                     exception_handlers={DatabaseUnavailable: _busy})


def app_from_env() -> Starlette:
    """uvicorn factory for worker processes: config path from ``MCHUB_CLOUD_CONFIG``."""
    cfg = config_mod.load(os.environ["MCHUB_CLOUD_CONFIG"])
    logs.setup(cfg.logging.level, cfg.logging.json)
    return build_app(cfg)
