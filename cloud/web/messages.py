"""The message browser (role ``integration``; ``admin`` may look too): Mirth's message view for mchub.

    GET  /ui/dashboard/messages                  newest HL7 messages; filters as query parameters
                                                 (source, control_id, name, from, to, state, content, cursor)
    POST /ui/dashboard/messages                  the same filters posted (CSRF) — the only way to search
                                                 by ID number, which never travels in a URL
    GET  /ui/dashboard/messages/{source}/{ref}   one message: raw, field tree, ACK with ERR, outcome,
                                                 patient (masked) and results (patient data: audited)
    POST /ui/dashboard/messages/send-again       reprocess (HL7 in) or replay (HL7 out, MCH) the checked
                                                 messages (form ``source``, ``ref`` repeated; CSRF, audited)

The queries are :mod:`cloud.integration.message_browser`; a search by ID number or name is audited as a
view of patient data (``view.messages``). See docs/dashboard.md "Message browser".
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cloud.errors import CloudError
from cloud.integration import message_browser as mb
from cloud.web.dashboard import ROLES
from cloud.web.shell import PREFIX, RENDER, actor, audit_view, db_of, guard, page
from protocol.logmask import mask_id_numbers

BASE = f"{PREFIX}/dashboard/messages"
#: reason codes the catalogs explain (protocol.hl7.errors ``reason``, the processor's ``internal``)
REASONS = frozenset({"hl7", "framing", "parse", "not_hl7", "charset", "unknown_charset", "required_field_missing",
                     "data_type_error", "unsupported_message_type", "unsupported_version",
                     "unsupported_processing_id", "code_map", "sender_not_allowed", "too_large", "internal"})
_CODE = re.compile(r"([a-z_]+): ")
_REF = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def reason_key(source: str, reason: str) -> str:
    """The catalog key that says ``reason`` in people's words ('' when there is none)."""
    if not reason:
        return ""
    m = _CODE.match(reason)
    if source == "hl7_in" and m and m.group(1) in REASONS:
        return f"msg.reason.{m.group(1)}"
    return "msg.reason.receiver" if source in mb.TOPICS else "msg.reason.other"


RENDER.env.globals["reason_key"] = reason_key  # the dashboard's MLLP log says reasons the same way


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


def filters_of(values: Mapping[str, Any]) -> mb.Filters:
    """Filters from query parameters or a posted form (unknown values fall back to no filter)."""
    def get(key: str) -> str:
        return str(values.get(key, "") or "")[:128]

    source = get("source") if get("source") in mb.SOURCES else "hl7_in"
    state = get("state") if get("state") in mb.STATES[source] else ""
    return mb.Filters(source=source, control_id=get("control_id"), national_id=get("national_id"), name=get("name"),
                      date_from=_date(get("from")), date_to=_date(get("to")), state=state, content=get("content"),
                      cursor=get("cursor"))


def _query(f: mb.Filters) -> dict[str, str]:
    """The filters as they appear in the form (never the ID number)."""
    return {"source": f.source, "control_id": f.control_id, "name": f.name, "state": f.state, "content": f.content,
            "from": f.date_from.isoformat() if f.date_from else "", "to": f.date_to.isoformat() if f.date_to else ""}


def _mask(text: str) -> str:
    return quote(mask_id_numbers(text[:300]), safe="")


@guard(*ROLES)
async def browse(request: Request) -> Response:
    """GET/POST /ui/dashboard/messages."""
    if request.method == "POST":
        f = filters_of(await request.form())
    else:
        f = filters_of(request.query_params)
        if mask_id_numbers(str(request.url.query)) != str(request.url.query) or f.national_id:
            f = mb.Filters(source=f.source)  # an ID number never in a URL: the form posts it
            return _render(request, f, mb.Page([]), error_key="search.id_by_post", status_code=400)
    try:
        found = await mb.search(db_of(request), request.app.state.cloud.ingestor.at_rest, f)
    except mb.BrowserError as exc:
        return _render(request, f, mb.Page([]), error=str(exc), status_code=400)
    if f.patient:
        await audit_view(request, "messages", detail={"source": f.source, "rows": len(found.rows),
                                                      "by": "national_id" if f.national_id.strip() else "name"})
    return _render(request, f, found)


def _render(request: Request, f: mb.Filters, found: mb.Page, *, error: str = "", error_key: str = "",
            status_code: int = 200) -> Response:
    q = request.query_params
    return page(request, "messages.html", {
        "f": f, "form": _query(f), "found": found, "sources": mb.SOURCES, "states": mb.STATES[f.source],
        "has_national_id": bool(f.national_id.strip()),
        "can_send_again": f.source != "dicom", "error": error or q.get("error", ""), "error_key": error_key,
        "done": q.get("done", ""), "scan": mb.CONTENT_SCAN}, status_code=status_code, nav="messages",
        patient_data=f.patient)


@guard(*ROLES)
async def detail(request: Request) -> Response:
    """GET /ui/dashboard/messages/{source}/{ref}."""
    source, ref = request.path_params["source"], request.path_params["ref"]
    if source not in mb.SOURCES or not _REF.fullmatch(ref):
        return RedirectResponse(f"{BASE}?error={_mask('unknown message')}", 303)
    at_rest = request.app.state.cloud.ingestor.at_rest
    ctx: dict[str, Any] = {"source": source, "ref": ref,
                           "done": request.query_params.get("done", ""),
                           "error": request.query_params.get("error", "")}
    try:
        if source == "hl7_in":
            ctx["m"] = await mb.hl7_detail(db_of(request), at_rest, ref, actor=actor(request))
        elif source in mb.TOPICS and ref.isdigit():
            ctx["o"] = await mb.outbox_detail(db_of(request), int(ref))
        else:
            found = await mb.search(db_of(request), at_rest, mb.Filters(source=source, control_id=ref))
            if not found.rows:
                raise mb.BrowserError(f"no DICOM instance {ref}")
            ctx["d"] = found.rows[0]
    except CloudError as exc:
        return RedirectResponse(f"{BASE}?source={source}&error={_mask(str(exc))}", 303)
    return page(request, "message.html", ctx, nav="messages", patient_data=source == "hl7_in")


@guard(*ROLES)
async def send_again(request: Request) -> Response:
    """POST /ui/dashboard/messages/send-again: source, ref (repeated), back."""
    form = await request.form()
    source = str(form.get("source", ""))
    refs = [str(r) for r in form.getlist("ref") if _REF.fullmatch(str(r))][:mb.PAGE]
    back = str(form.get("back", ""))
    back = back if back.startswith(f"{BASE}") and "\n" not in back else f"{BASE}?source={quote(source)}"
    if source not in mb.SOURCES or not refs:
        return RedirectResponse(_with(back, error="nothing selected"), 303)
    cloud = request.app.state.cloud
    outcome = await mb.send_again(db_of(request), cloud.ingestor.at_rest, source, refs, actor=actor(request),
                                  rules=mb.Rules.of(cloud.config.mllp))
    failed = {ref: why for ref, why in outcome.items() if why != "ok"}
    params = {"done": str(len(outcome) - len(failed))}
    if failed:
        params["error"] = "; ".join(f"{ref}: {why}" for ref, why in failed.items())
    return RedirectResponse(_with(back, **params), 303)


def _with(url: str, **params: str) -> str:
    """``url`` with ``params`` in place of its earlier outcome (``done``, ``error``)."""
    path, _, query = url.partition("?")
    kept = [(k, v) for k, v in parse_qsl(query) if k not in ("done", "error")]
    return f"{path}?{urlencode(kept + [(k, mask_id_numbers(v[:300])) for k, v in params.items()])}"


def routes() -> list[Route]:
    """The message browser's routes (inside the /ui mount)."""
    return [
        Route("/dashboard/messages", browse, methods=["GET", "POST"]),
        Route("/dashboard/messages/send-again", send_again, methods=["POST"]),
        Route("/dashboard/messages/{source}/{ref}", detail),
    ]
