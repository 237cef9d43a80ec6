"""A TEST PEER: a tiny Starlette server implementing docs/admin-api.md with in-memory stores.

It is not the cloud. It exists so the CLI and the hub-side client are tested over real
HTTP against the documented contract; the cloud's real handlers (PostgreSQL stores, MQTT
push) call the same provisioning functions. Runs under uvicorn on a loopback port in a
background thread (:class:`PeerServer`).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from protocol import envelope
from protocol.errors import EnvelopeError
from protocol.keys import RecipientPrivate
from protocol.model import Record
from provisioning import admin, auth, hubauth, hubs
from provisioning.authority import Authority
from provisioning.enrollment import EnrollRequest, process_enrollment
from provisioning.errors import AuthError, ProvisioningError
from provisioning.rotation import RotateRequest, process_rotation
from provisioning.stores import AuditEntry, Stores
from tests.support.waiting import HANG_S

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Session:
    username: str
    role: str
    expires_ms: int


@dataclass
class PeerState:
    stores: Stores
    authority: Authority
    users: dict[str, auth.AdminUser]
    clock: Callable[[], int] = field(default=lambda: time.time_ns() // 1_000_000)
    sessions: dict[str, Session] = field(default_factory=dict)
    recipients: dict[bytes, RecipientPrivate] = field(default_factory=dict)  #: key id -> cloud HPKE key
    received: list[Record] = field(default_factory=list)  #: records of accepted batches


def _json(value: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


def build_app(state: PeerState) -> Starlette:
    async def body(request: Request, type_: type[Any]) -> Any:
        return msgspec.json.decode(await request.body(), type=type_)

    def guarded(permission: str | None, fn: Callable[[Request, Session | None], Awaitable[Response]]) -> Handler:
        async def handler(request: Request) -> Response:
            try:
                session = None
                if permission is not None:
                    header = request.headers.get("authorization", "")
                    session = state.sessions.get(auth.session_digest(header.removeprefix("Bearer ")))
                    if session is None or session.expires_ms < state.clock():
                        raise AuthError("not signed in or session expired; run `mchub provision login`")
                    auth.require(session.role, permission)
                return await fn(request, session)
            except ProvisioningError as exc:
                extra = {"locked_until_ms": exc.locked_until_ms} if hasattr(exc, "locked_until_ms") else {}
                return _json({"reason": exc.reason, "message": str(exc), **extra}, exc.status)
            except msgspec.DecodeError as exc:
                return _json({"reason": "bad_request", "message": str(exc)}, 400)
            except EnvelopeError as exc:
                status = 401 if exc.reason in ("bad_signature", "wrong_recipient") else 400
                return _json({"reason": exc.reason, "message": str(exc)}, status)

        return handler

    async def login(request: Request, _: Session | None) -> Response:
        doc = await request.json()
        now = state.clock()
        result = auth.login(state.users.get(doc["username"]), doc["password"], doc["code"], now_ms=now)
        if result is None:
            raise AuthError("用户名、密码或动态码错误 / wrong username, password or code")
        state.users[result.user.username] = result.user
        action = "admin.login" if result.ok else "admin.login_failed"
        await state.stores.audit.append(AuditEntry(at_ms=now, actor=doc["username"], action=action,
                                                   target=doc["username"]))
        if result.error is not None:
            raise result.error
        token = auth.new_session_token()
        expires = now + auth.SESSION_MS
        state.sessions[auth.session_digest(token)] = Session(result.user.username, result.user.role, expires)
        return _json({"token": token, "expires_ms": expires, "username": result.user.username,
                      "role": result.user.role})

    async def sites(request: Request, s: Session | None) -> Response:
        return _json({"sites": await state.stores.sites.list()})

    async def add_site(request: Request, s: Session | None) -> Response:
        doc = await request.json()
        assert s is not None
        site = await admin.add_site(state.stores, site_id=doc["site_id"], name=doc["name"], actor=s.username,
                                    now_ms=state.clock())
        return _json(site, 201)

    async def create_token(request: Request, s: Session | None) -> Response:
        doc = await request.json()
        assert s is not None
        created = await admin.create_token(state.stores, site_id=doc["site_id"], actor=s.username,
                                           now_ms=state.clock(), lifetime_ms=int(doc.get("expires_in_s", 86400)) * 1000,
                                           hub_serial=doc.get("hub_serial"))
        r = created.record
        return _json({"token": created.text, "token_id": r.token_id, "site_id": r.site_id, "expires_ms": r.expires_ms,
                      "hub_serial": r.hub_serial}, 201)

    async def list_hubs(request: Request, s: Session | None) -> Response:
        now = state.clock()
        return _json({"hubs": [hubs.hub_row(h, now) for h in await state.stores.hubs.list()]})

    async def revoke(request: Request, s: Session | None) -> Response:
        assert s is not None
        doc = await request.json()
        hub = await hubs.revoke_hub(state.stores, request.path_params["hub"], actor=s.username,
                                    reason=doc.get("reason", ""), now_ms=state.clock())
        return _json(hubs.hub_row(hub, state.clock()))

    async def devices(request: Request, s: Session | None) -> Response:
        hub_id = request.path_params["hub"]
        return _json({"devices": await state.stores.devices.list(hub_id),
                      "version": await state.stores.devices.config_version(hub_id)})

    async def add_device(request: Request, s: Session | None) -> Response:
        assert s is not None
        doc = await request.json()
        device, version = await admin.add_device(state.stores, actor=s.username, now_ms=state.clock(),
                                                 hub_id=request.path_params["hub"], **doc)
        return _json({"device": device, "version": version, "pushed": False}, 201)

    async def remove_device(request: Request, s: Session | None) -> Response:
        assert s is not None
        version = await admin.remove_device(state.stores, actor=s.username, now_ms=state.clock(),
                                            hub_id=request.path_params["hub"], device_id=request.path_params["dev"])
        return _json({"version": version, "pushed": False})

    async def audit(request: Request, s: Session | None) -> Response:
        target = request.query_params.get("target")
        return _json({"entries": await state.stores.audit.list(target, int(request.query_params.get("limit", 200)))})

    async def enroll(request: Request, _: Session | None) -> Response:
        req = await body(request, EnrollRequest)
        return _json(await process_enrollment(req, state.stores, state.authority, now_ms=state.clock()))

    async def rotate(request: Request, _: Session | None) -> Response:
        req = await body(request, RotateRequest)
        return _json(await process_rotation(req, state.stores, state.authority, now_ms=state.clock()))

    async def hub_config(request: Request, _: Session | None) -> Response:
        signed = hubauth.parse_headers(request.headers)
        now = state.clock()
        hub = hubauth.verify_request(signed, await state.stores.hubs.get(signed.hub_id), method="GET",
                                     path=request.url.path, body=await request.body(), now_ms=now)
        return _json({"config": await state.authority.config_for(state.stores, hub, now_ms=now),
                      "bundle": state.authority.bundle})

    async def batches(request: Request, _: Session | None) -> Response:
        """Only the provisioning seam of ingest: who signed it, may they, does it open (no ack, no storage)."""
        data = await request.body()
        header = envelope.parse_header(data)
        signer = await hubs.resolve_signer(state.stores, header.hub_id, header.signer_key_id, now_ms=state.clock())
        _, records = envelope.open_batch(data, signer=signer, recipients=state.recipients)
        state.received.extend(records)
        return _json({"stored": len(records)})

    a = "/api/v1/admin"
    return Starlette(routes=[
        Route(f"{a}/login", guarded(None, login), methods=["POST"]),
        Route(f"{a}/sites", guarded("site:read", sites), methods=["GET"]),
        Route(f"{a}/sites", guarded("site:write", add_site), methods=["POST"]),
        Route(f"{a}/tokens", guarded("token:create", create_token), methods=["POST"]),
        Route(f"{a}/hubs", guarded("hub:read", list_hubs), methods=["GET"]),
        Route(f"{a}/hubs/{{hub}}/revoke", guarded("hub:revoke", revoke), methods=["POST"]),
        Route(f"{a}/hubs/{{hub}}/devices", guarded("device:read", devices), methods=["GET"]),
        Route(f"{a}/hubs/{{hub}}/devices", guarded("device:write", add_device), methods=["POST"]),
        Route(f"{a}/hubs/{{hub}}/devices/{{dev}}", guarded("device:write", remove_device), methods=["DELETE"]),
        Route(f"{a}/audit", guarded("audit:read", audit), methods=["GET"]),
        Route("/api/v1/enroll", guarded(None, enroll), methods=["POST"]),
        Route("/api/v1/rotate", guarded(None, rotate), methods=["POST"]),
        Route("/api/v1/hub/config", guarded(None, hub_config), methods=["GET"]),
        Route("/api/v1/batches", guarded(None, batches), methods=["POST"]),
    ])


class PeerServer:
    """Run the peer under uvicorn on 127.0.0.1 in a thread; ``url`` once started."""

    def __init__(self, state: PeerState) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(build_app(state), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])),
                                       daemon=True)

    def __enter__(self) -> PeerServer:
        self.thread.start()
        deadline = time.monotonic() + HANG_S
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test peer did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
