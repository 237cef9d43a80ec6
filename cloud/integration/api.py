"""``/integration/v1``: the integration team's API (bearer token of ``[admin] token_file``).

| method and path | what |
|---|---|
| ``GET /integration/v1/inbound?status=&limit=&before=`` | received HL7 frames with ACK codes (no message bodies) |
| ``POST /integration/v1/inbound/{uid}/reprocess`` | process a message again (a refused one is checked again) |
| ``GET /integration/v1/unmatched?status=waiting`` | the unmatched work list |
| ``POST /integration/v1/unmatched/{id}/resolve`` ``{"subject_id": N}`` or ``{"national_id": "..."}`` | attach it |
| ``GET /integration/v1/outbound?status=`` | vitals messages for the HIS |
| ``POST /integration/v1/outbound/{id}/replay`` | queue a dead letter again (same control id) |

Every change is audited with actor ``integration-api``. The dashboard's pages call
:mod:`cloud.integration.queries` directly with their own sessions and roles.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cloud.errors import CloudError
from cloud.fleet.admin_api import _authorised, _refuse
from cloud.integration import queries as q
from cloud.integration.message_browser import Rules, reprocess
from cloud.records.crypto_at_rest import AtRest

ACTOR = "integration-api"


def _rows(items: list[Any]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(i) for i in items]


def _int(value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"{value!r} is not an id")
    return int(value)


def _limit(request: Request) -> int:
    value = request.query_params.get("limit", "100")
    return max(1, min(1000, int(value))) if value.isdigit() else 100


async def get_inbound(request: Request) -> Response:
    """GET /integration/v1/inbound."""
    if (denied := _authorised(request)) is not None:
        return denied
    before = request.query_params.get("before", "")
    rows = await q.inbound_log(request.app.state.cloud.db, limit=_limit(request),
                               before_id=int(before) if before.isdigit() else None,
                               status=request.query_params.get("status"))
    return JSONResponse({"messages": _rows(rows)})


async def post_reprocess(request: Request) -> Response:
    """POST /integration/v1/inbound/{uid}/reprocess."""
    if (denied := _authorised(request)) is not None:
        return denied
    try:
        cloud = request.app.state.cloud
        await reprocess(cloud.db, cloud.ingestor.at_rest, request.path_params["uid"], actor=ACTOR,
                        rules=Rules.of(cloud.config.mllp))
    except CloudError as exc:
        return _refuse(404, "not_found", str(exc))
    return JSONResponse({"ok": True})


async def get_unmatched(request: Request) -> Response:
    """GET /integration/v1/unmatched."""
    if (denied := _authorised(request)) is not None:
        return denied
    items = await q.unmatched(request.app.state.cloud.db, status=request.query_params.get("status", "waiting"),
                              limit=_limit(request))
    return JSONResponse({"items": _rows(items)})


async def post_resolve(request: Request) -> Response:
    """POST /integration/v1/unmatched/{id}/resolve."""
    if (denied := _authorised(request)) is not None:
        return denied
    state = request.app.state.cloud
    try:
        doc = msgspec.json.decode(await request.body())
        subject = doc.get("subject_id")
        sid = await q.resolve_unmatched(
            state.db, AtRest(state.keys.at_rest, state.keys.blind_index), _int(request.path_params["id"]),
            actor=ACTOR, subject_id=int(subject) if subject is not None else None,
            national_id=doc.get("national_id"))
    except (CloudError, msgspec.DecodeError, AttributeError, ValueError, TypeError) as exc:
        return _refuse(400, "invalid", str(exc))
    return JSONResponse({"ok": True, "subject_id": sid})


async def get_outbound(request: Request) -> Response:
    """GET /integration/v1/outbound."""
    if (denied := _authorised(request)) is not None:
        return denied
    rows = await q.outbound_queue(request.app.state.cloud.db, status=request.query_params.get("status"),
                                  limit=_limit(request))
    return JSONResponse({"messages": _rows(rows)})


async def post_replay(request: Request) -> Response:
    """POST /integration/v1/outbound/{id}/replay."""
    if (denied := _authorised(request)) is not None:
        return denied
    try:
        await q.replay_outbound(request.app.state.cloud.db, _int(request.path_params["id"]), actor=ACTOR)
    except (CloudError, ValueError) as exc:
        return _refuse(409, "not_dead", str(exc))
    return JSONResponse({"ok": True})


def routes() -> list[Route]:
    """The integration API routes."""
    return [
        Route("/integration/v1/inbound", get_inbound, methods=["GET"]),
        Route("/integration/v1/inbound/{uid}/reprocess", post_reprocess, methods=["POST"]),
        Route("/integration/v1/unmatched", get_unmatched, methods=["GET"]),
        Route("/integration/v1/unmatched/{id}/resolve", post_resolve, methods=["POST"]),
        Route("/integration/v1/outbound", get_outbound, methods=["GET"]),
        Route("/integration/v1/outbound/{id}/replay", post_replay, methods=["POST"]),
    ]


def openapi_paths(admin: list[dict[str, list[str]]], refusal: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI entries of these routes (``admin``: the bearer security requirement)."""
    def op(summary: str, *, path_param: str | None = None, body: bool = False) -> dict[str, Any]:
        entry: dict[str, Any] = {"summary": summary, "security": admin,
                                 "responses": {"200": {"description": "ok"}, "401": refusal}}
        if path_param:
            entry["parameters"] = [{"name": path_param, "in": "path", "required": True,
                                    "schema": {"type": "integer" if path_param == "id" else "string"}}]
            entry["responses"] |= {"400": refusal, "404": refusal, "409": refusal}
        if body:
            entry["requestBody"] = {"content": {"application/json": {"schema": {"type": "object", "properties": {
                "subject_id": {"type": "integer"}, "national_id": {"type": "string"}}}}}}
        return entry

    return {
        "/integration/v1/inbound": {"get": op("Received HL7 messages with their ACK codes (newest first)")},
        "/integration/v1/inbound/{uid}/reprocess": {"post": op(
            "Process a message again (a refused one is checked again with the current rules)", path_param="uid")},
        "/integration/v1/unmatched": {"get": op("Results and studies waiting for their patient")},
        "/integration/v1/unmatched/{id}/resolve": {"post": op("Attach a waiting item to a subject",
                                                              path_param="id", body=True)},
        "/integration/v1/outbound": {"get": op("Vitals messages for the HIS")},
        "/integration/v1/outbound/{id}/replay": {"post": op("Queue a dead vitals message again",
                                                            path_param="id")},
    }
