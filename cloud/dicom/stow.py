"""DICOMweb STOW-RS endpoint (PS3.18 §10.5) as Starlette routes.

    POST /dicomweb/studies                 store instances of any study
    POST /dicomweb/studies/{StudyUID}      store instances that all belong to StudyUID

:func:`stow_routes` returns the routes to mount in the cloud application;
:func:`stow_app` wraps them in a small Starlette app (tests, a stand-alone receiver).

Answers: 200 all stored; 202 some stored, some failed; 409 none stored; each with a
DICOM JSON body listing stored and failed instances (:mod:`cloud.dicom.multipart`).
The whole request is refused with JSON ``{"reason", "message"}`` and 400 (malformed
multipart, invalid study UID in the URL), 413 (too large) or 415 (not
``multipart/related; type="application/dicom"``); the refused body is kept under the
object directory's ``rejected/``.
"""

from __future__ import annotations

import logging

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cloud.dicom.errors import CANNOT_UNDERSTAND, DicomError, MultipartError, PayloadTooLarge
from cloud.dicom.index import NATIONAL_ID_ISSUERS
from cloud.dicom.intake import Intake, OnIndexed
from cloud.dicom.multipart import (
    DICOM_TYPE,
    MAX_BODY_BYTES,
    MAX_PARTS,
    RESPONSE_TYPE,
    InstanceResult,
    parse_multipart,
    stow_boundary,
    stow_response,
)
from cloud.dicom.objects import ObjectStore
from cloud.dicom.uids import check_uid

log = logging.getLogger(__name__)


def _refuse(error: DicomError) -> JSONResponse:
    log.warning("STOW-RS request refused (%s): %s", error.reason, error)
    return JSONResponse({"reason": error.reason, "message": str(error)}, status_code=error.http_status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body ({declared} bytes) exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class StowEndpoint:
    """Handles one STOW-RS request: parse, then each part through :class:`Intake`."""

    def __init__(self, intake: Intake, max_body_bytes: int = MAX_BODY_BYTES, max_parts: int = MAX_PARTS) -> None:
        self.intake = intake
        self.max_body_bytes = max_body_bytes
        self.max_parts = max_parts

    async def handle(self, request: Request) -> Response:
        """The Starlette endpoint."""
        study = request.path_params.get("study")
        body = b""
        try:
            if study is not None:
                study = check_uid(study, "StudyInstanceUID in the URL")
            boundary = stow_boundary(request.headers.get("content-type"))
            body = await _read_body(request, self.max_body_bytes)
            parts = parse_multipart(body, boundary, self.max_parts, self.max_body_bytes)
        except DicomError as exc:
            if body and isinstance(exc, MultipartError) and not isinstance(exc, PayloadTooLarge):
                self.intake.store.quarantine(body, f"STOW-RS request refused: {exc.reason}: {exc}")
            return _refuse(exc)
        results: list[InstanceResult] = []
        for number, part in enumerate(parts, 1):
            if part.content_type != DICOM_TYPE:
                self.intake.store.quarantine(part.body, f"part {number} has Content-Type {part.content_type}")
                comment = f"part {number}: Content-Type {part.content_type} is not {DICOM_TYPE}"
                results.append(InstanceResult("", "", CANNOT_UNDERSTAND, comment))
                continue
            outcome = await self.intake.receive(part.body, study)
            if outcome.error is None:
                results.append(InstanceResult(outcome.sop_class_uid, outcome.sop_instance_uid))
            else:
                err = outcome.error
                results.append(
                    InstanceResult(outcome.sop_class_uid, outcome.sop_instance_uid, err.failure_reason,
                                   f"{err.reason}: {err}")
                )
        status, payload = stow_response(results)
        log.info("STOW-RS: %d instance(s), %d failed -> %d", len(results),
                 sum(r.failure_reason is not None for r in results), status)
        return JSONResponse(payload, status_code=status, media_type=RESPONSE_TYPE)


def stow_routes(
    store: ObjectStore,
    on_indexed: OnIndexed | None,
    *,
    prefix: str = "/dicomweb",
    max_body_bytes: int = MAX_BODY_BYTES,
    max_parts: int = MAX_PARTS,
    national_id_issuers: frozenset[str] = NATIONAL_ID_ISSUERS,
) -> list[BaseRoute]:
    """The STOW-RS routes under ``prefix``; ``on_indexed`` is awaited once per stored instance."""
    endpoint = StowEndpoint(Intake(store, on_indexed, national_id_issuers), max_body_bytes, max_parts)
    return [
        Route(f"{prefix}/studies", endpoint.handle, methods=["POST"]),
        Route(f"{prefix}/studies/{{study}}", endpoint.handle, methods=["POST"]),
    ]


def stow_app(store: ObjectStore, on_indexed: OnIndexed | None = None, **options: object) -> Starlette:
    """A Starlette app serving only the STOW-RS routes (options as for :func:`stow_routes`)."""
    return Starlette(routes=stow_routes(store, on_indexed, **options))  # type: ignore[arg-type]
