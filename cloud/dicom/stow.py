"""DICOMweb STOW-RS endpoint (PS3.18 §10.5) as Starlette routes.

    POST /dicomweb/studies                 store instances of any study
    POST /dicomweb/studies/{StudyUID}      store instances that all belong to StudyUID

:func:`stow_routes` returns the routes to mount in the cloud application;
:func:`stow_app` wraps them in a small Starlette app (tests, a stand-alone receiver).

Every request must carry a sender credential (:mod:`cloud.dicom.credentials`), checked
before the body is read: without a valid one the answer is 401 with ``WWW-Authenticate``,
and the refusal is audited by the ``authorise`` callable. The body is then streamed to a
temporary file under the size cap (written in a worker thread, never held whole in
memory), split by offsets through ``mmap``, and each part is read and processed alone.

Answers: 200 all stored; 202 some stored, some failed; 409 none stored; each with a
DICOM JSON body listing stored and failed instances (:mod:`cloud.dicom.multipart`).
The whole request is refused with JSON ``{"reason", "message"}`` and 400 (malformed
multipart, invalid study UID in the URL), 413 (too large) or 415 (not
``multipart/related; type="application/dicom"``); the refused body is kept under the
object directory's ``rejected/`` (moved there, off the event loop).
"""

from __future__ import annotations

import asyncio
import logging
import mmap
from pathlib import Path
from typing import BinaryIO

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from cloud.dicom.credentials import Authorise, Presented, presented
from cloud.dicom.errors import (
    CANNOT_UNDERSTAND,
    DicomError,
    MultipartError,
    PayloadTooLarge,
    StoreError,
    Unauthorised,
)
from cloud.dicom.index import NATIONAL_ID_ISSUERS
from cloud.dicom.intake import Intake, OnIndexed
from cloud.dicom.multipart import (
    DICOM_TYPE,
    MAX_BODY_BYTES,
    MAX_PARTS,
    RESPONSE_TYPE,
    InstanceResult,
    PartSpan,
    split_multipart,
    stow_boundary,
    stow_response,
)
from cloud.dicom.objects import ObjectStore
from cloud.dicom.uids import check_uid

log = logging.getLogger(__name__)


def _refuse(error: DicomError) -> JSONResponse:
    log.warning("STOW-RS request refused (%s): %s", error.reason, error)
    headers = {"WWW-Authenticate": 'Basic realm="mchub DICOMweb", Bearer'} if isinstance(error, Unauthorised) else None
    return JSONResponse({"reason": error.reason, "message": str(error)}, status_code=error.http_status,
                        headers=headers)


def _peer(request: Request) -> str:
    return request.client.host if request.client is not None else "-"


class _Spool:
    """The request body on disk in the object directory's ``tmp/``, written off the event loop."""

    FLUSH = 1 << 20  #: write to disk in pieces of this size

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._file: BinaryIO | None = None

    def _write(self, data: bytes) -> None:
        if self._file is None:
            self._file = open(self.path, "xb")  # noqa: SIM115 - closed in close()
        self._file.write(data)

    async def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= self.FLUSH:
            await self.flush()

    async def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending, self._pending_size = [], 0
            await asyncio.to_thread(self._write, data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


async def _spool_body(request: Request, spool: _Spool, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the request body ({declared} bytes) exceeds the limit of {limit} bytes")
    async for chunk in request.stream():
        if spool.size + len(chunk) > limit:
            raise PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes")
        await spool.add(chunk)
    await spool.flush()
    await asyncio.to_thread(spool.close)


def _split_file(path: Path, boundary: bytes, max_parts: int, max_part_bytes: int) -> list[PartSpan]:
    """Find the parts of a spooled (non-empty) body (blocking; memory-mapped, nothing copied)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        return split_multipart(mm, boundary, max_parts, max_part_bytes)


def _read_span(path: Path, span: PartSpan) -> bytes:
    with open(path, "rb") as f:
        f.seek(span.start)
        return f.read(span.end - span.start)


class StowEndpoint:
    """Handles one STOW-RS request: authorise, spool the body to disk, then each part through :class:`Intake`."""

    def __init__(self, intake: Intake, authorise: Authorise | None, max_body_bytes: int = MAX_BODY_BYTES,
                 max_parts: int = MAX_PARTS) -> None:
        self.intake = intake
        self.authorise = authorise
        self.max_body_bytes = max_body_bytes
        self.max_parts = max_parts

    async def _sender(self, request: Request) -> str:
        if self.authorise is None:
            return "-"
        try:
            given = presented(request.headers.get("authorization"))
        except Unauthorised as exc:  # unreadable header: refused (and audited) like a wrong one
            await self.authorise(Presented("", "?"), _peer(request), request.url.path)
            raise exc
        return await self.authorise(given, _peer(request), request.url.path)

    async def handle(self, request: Request) -> Response:
        """The Starlette endpoint."""
        spool = _Spool(self.intake.store.temp_path())
        try:
            return await self._handle(request, spool)
        finally:  # also when the client goes away mid-body: no spool file or open handle is left behind
            await asyncio.to_thread(spool.discard)

    async def _handle(self, request: Request, spool: _Spool) -> Response:
        study = request.path_params.get("study")
        store = self.intake.store
        try:
            sender = await self._sender(request)  # before a single body byte is read
            if study is not None:
                study = check_uid(study, "StudyInstanceUID in the URL")
            boundary = stow_boundary(request.headers.get("content-type"))
            try:
                await _spool_body(request, spool, self.max_body_bytes)
                if spool.size == 0:
                    raise MultipartError("the request body is empty")
                spans = await asyncio.to_thread(_split_file, spool.path, boundary, self.max_parts,
                                                self.max_body_bytes)
            except OSError as exc:  # disk full, permissions: the sender should retry later
                raise StoreError(f"could not spool the request body in {store.tmp}: {exc.strerror or exc}") from exc
        except DicomError as exc:
            if spool.size and isinstance(exc, MultipartError) and not isinstance(exc, PayloadTooLarge):
                await asyncio.to_thread(spool.close)
                await asyncio.to_thread(store.quarantine_file, spool.path,
                                        f"STOW-RS request refused: {exc.reason}: {exc}")
            return _refuse(exc)
        results = await self._parts(spool.path, spans, study)
        status, payload = stow_response(results)
        log.info("STOW-RS from %s: %d instance(s), %d failed -> %d", sender, len(results),
                 sum(r.failure_reason is not None for r in results), status)
        return JSONResponse(payload, status_code=status, media_type=RESPONSE_TYPE)

    async def _parts(self, path: Path, spans: list[PartSpan], study: str | None) -> list[InstanceResult]:
        results: list[InstanceResult] = []
        for number, span in enumerate(spans, 1):
            body = await asyncio.to_thread(_read_span, path, span)  # one part in memory at a time
            if span.content_type != DICOM_TYPE:
                await asyncio.to_thread(self.intake.store.quarantine, body,
                                        f"part {number} has Content-Type {span.content_type}")
                comment = f"part {number}: Content-Type {span.content_type} is not {DICOM_TYPE}"
                results.append(InstanceResult("", "", CANNOT_UNDERSTAND, comment))
                continue
            outcome = await self.intake.receive(body, study)
            if outcome.error is None:
                results.append(InstanceResult(outcome.sop_class_uid, outcome.sop_instance_uid))
            else:
                err = outcome.error
                results.append(
                    InstanceResult(outcome.sop_class_uid, outcome.sop_instance_uid, err.failure_reason,
                                   f"{err.reason}: {err}")
                )
        return results


def stow_routes(
    store: ObjectStore,
    on_indexed: OnIndexed | None,
    *,
    authorise: Authorise | None,
    prefix: str = "/dicomweb",
    max_body_bytes: int = MAX_BODY_BYTES,
    max_parts: int = MAX_PARTS,
    national_id_issuers: frozenset[str] = NATIONAL_ID_ISSUERS,
) -> list[BaseRoute]:
    """The STOW-RS routes under ``prefix``; ``on_indexed`` is awaited once per stored instance.

    ``authorise`` checks the sender's credential before the body is read (the cloud passes
    :class:`cloud.integration.dicom_senders.SenderAuth`); ``None`` leaves the routes open and
    is meant for tests and tools only — nothing in the cloud passes it.
    """
    endpoint = StowEndpoint(Intake(store, on_indexed, national_id_issuers), authorise, max_body_bytes, max_parts)
    return [
        Route(f"{prefix}/studies", endpoint.handle, methods=["POST"]),
        Route(f"{prefix}/studies/{{study}}", endpoint.handle, methods=["POST"]),
    ]


def stow_app(store: ObjectStore, on_indexed: OnIndexed | None = None, *, authorise: Authorise | None,
             **options: object) -> Starlette:
    """A Starlette app serving only the STOW-RS routes (options as for :func:`stow_routes`)."""
    return Starlette(routes=stow_routes(store, on_indexed, authorise=authorise, **options))  # type: ignore[arg-type]
