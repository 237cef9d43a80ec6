"""The unmatched work list page: whom each waiting result names, and matching it by a click.

    GET  /ui/dashboard/unmatched                     waiting results with patient context and ranked
                                                     candidates; this sign-in's matches (patient data: audited)
    POST /ui/dashboard/unmatched/{item_id}/resolve   subject_id (a candidate's button) or national_id (typed);
                                                     CSRF, role-checked, audited ``unmatched.resolve``
    POST /ui/dashboard/unmatched/{item_id}/undo      undo a match made in this sign-in by this user
                                                     (audited ``unmatched.undo``); the item waits again

The data: :mod:`cloud.integration.worklist` (context, results, candidates) and
:mod:`cloud.integration.matching` (resolve, undo).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from cloud.errors import PatientIndexError
from cloud.integration import queries as iq
from cloud.integration import worklist
from cloud.records.crypto_at_rest import AtRest
from cloud.web.shell import ADMIN, INTEGRATION, PREFIX, RENDER, actor, audit_view, db_of, flash_param, guard, page
from protocol import idnum
from webui.security import session_of

ROLES = (INTEGRATION, ADMIN)
BACK = f"{PREFIX}/dashboard/unmatched"


def _at_rest(request: Request) -> AtRest:
    keys: AtRest = request.app.state.cloud.ingestor.at_rest
    return keys


def _since_ms(request: Request) -> int:
    """When this sign-in began: matches made since then may be undone."""
    return int(session_of(request).created * 1000)


@guard(*ROLES)
async def show(request: Request) -> Response:
    """GET /ui/dashboard/unmatched."""
    items = await worklist.load(db_of(request), _at_rest(request))
    mine = await worklist.matched_by(db_of(request), _at_rest(request), actor(request), _since_ms(request))
    await audit_view(request, "unmatched", detail={"rows": len(items), "candidates": sum(len(i.offers) for i in items)})
    context: dict[str, Any] = {"items": items, "mine": mine, "error": request.query_params.get("error", ""),
                               "matched": request.query_params.get("matched", ""),
                               "undone": request.query_params.get("undone", "")}
    return page(request, "unmatched.html", context, nav="dashboard", patient_data=True)


def _item(request: Request) -> int:
    item = str(request.path_params["item_id"])
    if not item.isdigit():
        raise PatientIndexError(RENDER.catalog.t("unmatched.no_item", RENDER.language(request), item=item[:20]))
    return int(item)


@guard(*ROLES)
async def resolve(request: Request) -> Response:
    """POST /ui/dashboard/unmatched/{item_id}/resolve: subject_id or national_id."""
    form = await request.form()
    subject, typed = str(form.get("subject_id", "")), str(form.get("national_id", ""))
    lang = RENDER.language(request)
    if not subject.isdigit() and not idnum.is_valid(typed):
        return RedirectResponse(f"{BACK}?error={flash_param(RENDER.catalog.t('unmatched.bad_id', lang))}", 303)
    try:
        item = _item(request)
        await iq.resolve_unmatched(db_of(request), _at_rest(request), item, actor=actor(request),
                                   subject_id=int(subject) if subject.isdigit() else None, national_id=typed or None)
    except PatientIndexError:  # matched by someone else meanwhile, or the subject was merged away
        return RedirectResponse(f"{BACK}?error={flash_param(RENDER.catalog.t('unmatched.refused', lang))}", 303)
    return RedirectResponse(f"{BACK}?matched={item}#mine", 303)


@guard(*ROLES)
async def undo(request: Request) -> Response:
    """POST /ui/dashboard/unmatched/{item_id}/undo."""
    try:
        item = _item(request)
        await iq.undo_unmatched(db_of(request), item, actor=actor(request), since_ms=_since_ms(request))
    except PatientIndexError:
        message = RENDER.catalog.t("unmatched.undo_refused", RENDER.language(request))
        return RedirectResponse(f"{BACK}?error={flash_param(message)}", 303)
    return RedirectResponse(f"{BACK}?undone={item}", 303)


def routes() -> list[Route]:
    """The work-list routes (inside the /ui mount)."""
    return [
        Route("/dashboard/unmatched", show),
        Route("/dashboard/unmatched/{item_id}/resolve", resolve, methods=["POST"]),
        Route("/dashboard/unmatched/{item_id}/undo", undo, methods=["POST"]),
    ]
