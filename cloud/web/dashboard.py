"""The integration dashboard (role ``integration``; ``admin`` may look too).

    GET  /ui/dashboard             hubs, charts (traffic, error rate, lag per hour), the three queues,
                                   dead letters, records refused one by one per hub, MLLP log
    POST /ui/dashboard/replay      put a dead letter back in its queue (CSRF, audited)
    POST /ui/dashboard/search      control id, outbox key, HUB:SEQ batch, hub, patient (masked; form q)
    GET  /ui/dashboard/search?q=   the same, except an ID number (never in a URL: refused, 400)
    (the unmatched work list, /ui/dashboard/unmatched: cloud/web/worklist.py)
    GET  /ui/dashboard/events      Server-Sent Events: the headline numbers every few seconds
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from cloud import outbox
from cloud.db.engine import Tx
from cloud.errors import CloudError
from cloud.web import charts, hl7, queues, search
from cloud.web.shell import ADMIN, INTEGRATION, PREFIX, RENDER, actor, audit_view, db_of, flash_param, guard, page
from protocol.clinical import risk
from protocol.ids import now_ms
from protocol.logmask import mask_id_numbers
from protocol.mch.records import PrenatalVisit, case_from_json

ROLES = (INTEGRATION, ADMIN)
EVENT_PERIOD_S = 5.0
HUB_ROWS = 100  #: hubs listed before "show all" (a city has ~1,100; problems sort first)


async def load_queues(tx: Tx, now: int) -> list[queues.Queue]:
    """Inbound sync, HIS outbound (shown by control id), MCH uploads."""
    his = hl7.label_vitals(await queues.outbox_queue(tx, "his", now))
    return [await queues.sync_queue(tx, now), his, await queues.outbox_queue(tx, "mch", now)]


async def headline(tx: Tx) -> dict[str, str]:
    """The numbers the live events update (element id -> text)."""
    h = await tx.fetchrow("SELECT COALESCE(SUM(CASE WHEN online THEN 1 ELSE 0 END), 0) AS online, COUNT(*) AS n, "
                          "COALESCE(SUM(queue_depth), 0) AS waiting FROM hubs WHERE status = 'active'")
    depth = await outbox.depths(tx)
    pending = sum(n for (_, status), n in depth.items() if status == "pending")
    dead = sum(n for (_, status), n in depth.items() if status == "dead")
    online, n, waiting = (h["online"], h["n"], h["waiting"]) if h is not None else (0, 0, 0)
    return {"hubs-online": f"{online}/{n}", "sync-waiting": str(waiting),
            "outbox-pending": str(pending), "outbox-dead": str(dead)}


REFUSED_ROWS = 50  #: latest refused records listed (every hub's count is shown)


async def refused_records(tx: Tx) -> dict[str, Any]:
    """Records the cloud refused one by one (migration 10): per hub, and the latest rows.

    Each is also on its hub's dead-letter list, where staff resend or dismiss it.
    """
    per_hub = [dict(r) for r in await tx.fetch(
        "SELECT r.hub_id, COUNT(*) AS n, MAX(r.received_ms) AS last_ms, MAX(h.telemetry) AS telemetry "
        "FROM refused_records r JOIN hubs h ON h.hub_id = r.hub_id GROUP BY r.hub_id ORDER BY MAX(r.received_ms) DESC")]
    for h in per_hub:  # still open on the hub (its telemetry; resent or dismissed ones are not)
        h["open"] = _open_on_hub(h.pop("telemetry"))
    latest = await tx.fetch("SELECT hub_id, seq, record_type, reason, message, at_ms, received_ms FROM refused_records "
                            "ORDER BY received_ms DESC, seq DESC LIMIT $1", REFUSED_ROWS)
    return {"per_hub": per_hub, "latest": [dict(r) for r in latest]}


RISK_WINDOW_MS = 7 * 86_400_000  #: how far back the dashboard lists raised pregnancy risk grades


async def risk_raised(tx: Tx, since_ms: int) -> list[dict[str, Any]]:
    """Prenatal records stored since ``since_ms`` whose five-colour grade went up from the case's
    previous version, or whose first grade is already orange, red or purple: the dashboard's alert."""
    rows = await tx.fetch(
        "SELECT r.case_id, r.version, r.payload, r.created_ms, c.site_id FROM mch_records r "
        "JOIN mch_cases c ON c.case_id = r.case_id WHERE c.type = 'prenatal' AND r.case_id IN "
        "(SELECT case_id FROM mch_records WHERE created_ms >= $1) ORDER BY r.case_id, r.version", since_ms)
    out: list[dict[str, Any]] = []
    previous: dict[str, tuple[str | None, bool]] = {}  #: case -> (colour, purple) of its previous version
    for r in rows:
        try:
            now = case_from_json(r["payload"])
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue
        if not isinstance(now, PrenatalVisit):
            continue
        grade = (now.risk_colour, now.risk_purple)
        first = r["case_id"] not in previous
        before = previous.get(r["case_id"], (None, False))
        previous[r["case_id"]] = grade
        # a first grade is an alert only when it is already high-risk (orange, red, purple)
        notable = not first or now.risk_colour in ("orange", "red") or now.risk_purple
        if r["created_ms"] >= since_ms and notable and risk.raised(before, grade):
            out.append({"case_id": r["case_id"], "site_id": r["site_id"], "at_ms": r["created_ms"],
                        "screened_on": now.screened_on, "weeks": now.gestational_weeks,
                        "before": before[0], "after": now.risk_colour, "purple": now.risk_purple})
    return sorted(out, key=lambda a: -int(a["at_ms"]))


class _Open(msgspec.Struct):
    """The one field of a hub's telemetry the refused-records table shows (older hubs: None)."""

    dead_letters_open: int | None = None


def _open_on_hub(telemetry: str | None) -> int | None:
    try:
        return msgspec.json.decode(telemetry, type=_Open).dead_letters_open if telemetry else None
    except msgspec.DecodeError:
        return None


@guard(*ROLES)
async def overview(request: Request) -> Response:
    """GET /ui/dashboard."""
    now = now_ms()
    t = RENDER.catalog.t
    lang = RENDER.language(request)
    show_all = request.query_params.get("hubs") == "all"
    async with db_of(request).transaction() as tx:
        hubs = await queues.hubs(tx, now, limit=1_000_000 if show_all else HUB_ROWS)
        hub_total = await tx.fetchval("SELECT COUNT(*) FROM hubs")
        qs = await load_queues(tx, now)
        topics = await queues.topics(tx)
        numbers = await headline(tx)
        unmatched = await hl7.unmatched_count(tx)
        refused = await refused_records(tx)
        raised = await risk_raised(tx, now - RISK_WINDOW_MS)
        drawn = await charts.build(db_of(request), tx, now, qs, lambda key: t(key, lang))
    mllp = await hl7.mllp_log(db_of(request), limit=30)
    acks = await hl7.ack_counts(db_of(request), now - queues.DAY_MS)

    return page(request, "dashboard.html", {
        "now": now, "hubs": hubs, "hub_total": hub_total, "queues": qs,
        "charts": drawn, "topics": topics, "mllp": mllp, "acks": acks,
        "numbers": numbers, "unmatched": unmatched, "refused": refused, "risk_raised": raised,
        "replayed": request.query_params.get("replayed"),
        "error": request.query_params.get("error")}, nav="dashboard")


@guard(*ROLES)
async def replay(request: Request) -> Response:
    """POST /ui/dashboard/replay: queue, id."""
    form = await request.form()
    ident = str(form.get("id", ""))
    try:
        if not ident.isdigit():
            raise CloudError(f"{ident!r} is not a message id")
        await outbox.replay(db_of(request), int(ident), actor=actor(request))
    except CloudError as exc:
        return RedirectResponse(f"{PREFIX}/dashboard?error={flash_param(str(exc))}#dead", 303)
    return RedirectResponse(f"{PREFIX}/dashboard?replayed={flash_param(ident)}#dead", 303)


@guard(*ROLES)
async def find(request: Request) -> Response:
    """POST /ui/dashboard/search (form ``q``, CSRF-checked); GET ?q= for what is not an ID number.

    An ID number never travels in a URL (issue 17 finding 9: it lands in access and proxy logs
    and browser history): the forms post, and a GET whose query holds one is not searched."""
    if request.method == "POST":
        q = str((await request.form()).get("q", ""))
    else:
        q = request.query_params.get("q", "")
        if mask_id_numbers(q) != q:
            return page(request, "search.html", {"found": search.Found(""), "q": "", "refused_id": True},
                        status_code=400, nav="dashboard")
    async with db_of(request).transaction() as tx:
        found = await search.search(tx, request.app.state.cloud.ingestor.at_rest, q)
    if found.kind == "patient":
        await audit_view(request, "search.patient", subject_id=found.patient.subject_id if found.patient else None,
                         detail={"found": found.patient is not None})
    return page(request, "search.html", {"found": found, "q": found.query}, nav="dashboard",
                patient_data=found.kind == "patient")


@guard(*ROLES)
async def events(request: Request) -> Response:
    """GET /ui/dashboard/events: ``event: <id>`` / ``data: <text>`` for each headline number."""

    async def stream() -> AsyncIterator[str]:
        last: dict[str, str] = {}
        while not await request.is_disconnected():
            try:
                async with db_of(request).transaction() as tx:
                    numbers = await headline(tx)
            except CloudError:
                numbers = {}
            for k, v in numbers.items():
                if last.get(k) != v:
                    yield f"event: {k}\ndata: {v}\n\n"
            last = numbers or last
            yield ": keep-alive\n\n"
            await asyncio.sleep(EVENT_PERIOD_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


def routes() -> list[Route]:
    """The dashboard routes (inside the /ui mount)."""
    return [
        Route("/dashboard", overview),
        Route("/dashboard/replay", replay, methods=["POST"]),
        Route("/dashboard/search", find, methods=["GET", "POST"]),
        Route("/dashboard/events", events),
    ]
