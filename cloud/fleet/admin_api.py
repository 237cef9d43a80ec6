"""The admin HTTP API (``/admin/v1``), guarded by the bearer token of ``[admin] token_file``.

Provisioning and the fleet simulator register hubs here without importing ``cloud``.
Every call goes through the one fleet registry (:class:`cloud.fleet.service.Fleet`), so it
is validated and audited the same way as the CLI and the admin console, and a revocation
here retires every key, drops the MQTT login and pushes the ``revoke`` command.
"""

from __future__ import annotations

import hmac
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cloud.errors import RegistryError
from cloud.fleet.api import fleet_of
from provisioning.errors import Conflict, ProvisioningError, RequestError


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
        raise RequestError(f"request body is not JSON: {exc}") from exc


async def post_site(request: Request) -> Response:
    """POST /admin/v1/sites {"site_id", "name"}."""
    if (denied := _authorised(request)) is not None:
        return denied
    try:
        doc = await _json(request)
        await fleet_of(request).ensure_site("admin-api", str(doc["site_id"]), str(doc.get("name", "")))
    except ProvisioningError as exc:
        return _refuse(exc.status, exc.reason, str(exc))
    except (KeyError, TypeError) as exc:
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
                kid = await fleet_of(request).register_hub("admin-api", str(h["hub_id"]), site_id=str(h["site_id"]),
                                                           public_key=bytes.fromhex(h["public_key"]))
                out.append({"hub_id": h["hub_id"], "key_id": kid, "created": True})
            except Conflict:
                out.append({"hub_id": h["hub_id"], "created": False})
    except ProvisioningError as exc:
        return _refuse(exc.status, exc.reason, str(exc))
    except (KeyError, TypeError, ValueError) as exc:
        return _refuse(400, "invalid", str(exc))
    return JSONResponse({"hubs": out})


async def get_hubs(request: Request) -> Response:
    """GET /admin/v1/hubs: hubs with presence, valid key ids and marks."""
    if (denied := _authorised(request)) is not None:
        return denied
    hubs = await fleet_of(request).hub_infos(request.query_params.get("site_id"))
    return Response(msgspec.json.encode({"hubs": hubs}), media_type="application/json")


async def post_revoke(request: Request) -> Response:
    """POST /admin/v1/hubs/{hub_id}/revoke {"reason"}: every credential of the hub goes (see Fleet.revoke)."""
    if (denied := _authorised(request)) is not None:
        return denied
    try:
        doc = await _json(request)
        await fleet_of(request).revoke("admin-api", request.path_params["hub_id"], str(doc.get("reason", "")))
    except ProvisioningError as exc:
        return _refuse(exc.status, exc.reason, str(exc))
    except (AttributeError, TypeError) as exc:
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
