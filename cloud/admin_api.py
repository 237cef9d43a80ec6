"""The admin HTTP API (``/admin/v1``), guarded by the bearer token of ``[admin] token_file``.

Provisioning and the fleet simulator register hubs here without importing ``cloud``.
Every call goes through :mod:`cloud.registry`, so it is validated and audited the same way
as the CLI.
"""

from __future__ import annotations

import dataclasses
import hmac
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cloud import registry
from cloud.errors import RegistryError


def _refuse(status: int, reason: str, message: str) -> Response:
    return JSONResponse({"reason": reason, "message": message}, status)


def _authorised(request: Request) -> Response | None:
    token = request.app.state.cloud.admin_token
    if token is None:
        return _refuse(404, "admin_disabled", "the admin API is disabled; set [admin] token_file")
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), token.encode()):
        return _refuse(401, "unauthorised", "missing or wrong bearer token")
    return None


async def _json(request: Request) -> Any:
    try:
        return msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise RegistryError(f"request body is not JSON: {exc}") from exc


async def post_site(request: Request) -> Response:
    """POST /admin/v1/sites {"site_id", "name"}."""
    if (denied := _authorised(request)) is not None:
        return denied
    try:
        doc = await _json(request)
        await registry.create_site(str(doc["site_id"]), str(doc.get("name", "")), actor="admin-api")
    except (RegistryError, KeyError, TypeError) as exc:
        return _refuse(400, "invalid", str(exc))
    return JSONResponse({"ok": True})


async def post_hubs(request: Request) -> Response:
    """POST /admin/v1/hubs {"hubs": [{"hub_id", "site_id", "public_key" (hex)}]}; existing hubs are skipped."""
    if (denied := _authorised(request)) is not None:
        return denied
    out = []
    try:
        doc = await _json(request)
        for h in doc["hubs"]:
            try:
                kid = await registry.register_hub(str(h["hub_id"]), site_id=str(h["site_id"]),
                                                  public_key=bytes.fromhex(h["public_key"]), actor="admin-api")
                out.append({"hub_id": h["hub_id"], "key_id": kid, "created": True})
            except RegistryError as exc:
                if "already registered" not in str(exc):
                    raise
                out.append({"hub_id": h["hub_id"], "created": False})
    except (RegistryError, KeyError, TypeError, ValueError) as exc:
        return _refuse(400, "invalid", str(exc))
    return JSONResponse({"hubs": out})


async def get_hubs(request: Request) -> Response:
    """GET /admin/v1/hubs: hubs with presence, valid key ids and marks."""
    if (denied := _authorised(request)) is not None:
        return denied
    hubs = await registry.list_hubs(request.query_params.get("site_id"))
    return JSONResponse({"hubs": [dataclasses.asdict(h) for h in hubs]})


async def post_revoke(request: Request) -> Response:
    """POST /admin/v1/hubs/{hub_id}/revoke {"reason"}."""
    if (denied := _authorised(request)) is not None:
        return denied
    try:
        doc = await _json(request)
        await registry.revoke_hub(request.path_params["hub_id"], reason=str(doc.get("reason", "")),
                                  actor="admin-api")
    except RegistryError as exc:
        return _refuse(400, "invalid", str(exc))
    return JSONResponse({"ok": True})


async def post_dicom_sender(request: Request) -> Response:
    """POST /admin/v1/dicom-senders {"name", "note"}: a STOW-RS sender credential; the token is in this answer only."""
    if (denied := _authorised(request)) is not None:
        return denied
    from cloud.integration.dicom_senders import SenderError, add_sender

    try:
        doc = await _json(request)
        sender, token = await add_sender(request.app.state.cloud.db, str(doc["name"]), actor="admin-api",
                                         note=str(doc.get("note", "")))
    except (RegistryError, SenderError, KeyError, TypeError) as exc:
        return _refuse(400, "invalid", str(exc))
    return JSONResponse({"name": sender.name, "token": token}, headers={"Cache-Control": "no-store"})


def routes() -> list[Route]:
    """The admin routes."""
    return [
        Route("/admin/v1/sites", post_site, methods=["POST"]),
        Route("/admin/v1/hubs", post_hubs, methods=["POST"]),
        Route("/admin/v1/hubs", get_hubs, methods=["GET"]),
        Route("/admin/v1/hubs/{hub_id}/revoke", post_revoke, methods=["POST"]),
        Route("/admin/v1/dicom-senders", post_dicom_sender, methods=["POST"]),
    ]
