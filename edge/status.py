"""The hub's status: one snapshot for the JSON API, the console and telemetry.

JSON API (Starlette, served by uvicorn inside the hub on ``[web] bind:port``)::

    GET  /api/status                        everything below in one document
    GET  /api/devices                       device health
    GET  /api/sessions/today                today's sessions (subjects masked)
    GET  /api/readings/unbound              readings waiting for a patient
    POST /api/sessions                      staff entry: {"station_id", "name", "national_id"?, "pregnant_weeks"?}
    POST /api/sessions/close                {"station_id", "reason"?: "finished" | "staff"}
    POST /api/readings/{uid}/bind           {"session_id", "by"}
    GET  /api/dead-letters[?all=1]          records the cloud refused (open ones; all=1: dealt with too)
    POST /api/dead-letters/{seq}/resend     {"drop_codes"?: [code, ...], "by"?}: store it again as a new reading
    POST /api/dead-letters/{seq}/dismiss    {"by"?}: keep it, do not send it again

Every call needs a signed-in staff session (cookie from ``/login``; unsafe methods also
the ``X-CSRF-Token`` header) or the hub's console token (``Authorization: Bearer``, what
``mchub edge status`` uses); views of patient data are audited (a poller once per ten
minutes). ID numbers and names are only ever shown masked. The pages are in :mod:`edge.web`.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from typing import TYPE_CHECKING, Any

from edge.errors import EdgeError
from edge.hub_view import HubView
from protocol import idnum
from protocol.clinical.pregnancy import check_weeks
from protocol.model import Subject

if TYPE_CHECKING:
    from edge.store.reader import Reader


#: a repeated view of the same data by the same actor is audited at most this often
VIEW_AUDIT_EVERY_S = 600.0


def start_of_today_ms() -> int:
    """Local midnight, ms since the epoch."""
    today = dt.datetime.combine(dt.date.today(), dt.time())
    return int(today.timestamp() * 1000)


def store_snapshot(reader: Reader, data_dir: Any = None) -> dict[str, Any]:
    """The part of the status that comes from hub.db alone (also used when the hub is not running)."""
    st = reader.state()
    oldest = reader.oldest_unsynced_at()
    now = time.time_ns() // 1_000_000
    snap: dict[str, Any] = {
        "hub_id": st["hub_id"],
        "epoch": st["epoch"],
        "next_seq": st["next_seq"],
        "acked_through": st["acked_through"],
        "queue_depth": st["next_seq"] - 1 - st["acked_through"],
        "oldest_unsynced_ms": oldest,
        "oldest_unsynced_age_s": round((now - oldest) / 1000, 1) if oldest is not None else None,
        "last_ack_ms": st["last_ack_ms"],
        "last_error": st["last_error"],
        "last_error_ms": st["last_error_ms"],
        "sessions_today": reader.sessions_since(start_of_today_ms()),
        "urgent": reader.urgent_since(start_of_today_ms()),
        "unbound_count": reader.count_unbound(),
        "unbound": reader.unbound(50),
        "dead_letters_open": reader.count_dead_letters(),
        "dead_letters": reader.dead_letters(open_only=True, limit=50),
        "audit": reader.audit(10),
    }
    if data_dir is not None:
        snap["disk_free_bytes"] = shutil.disk_usage(data_dir).free
    return snap


def snapshot(hub: HubView) -> dict[str, Any]:
    """Full status of a running hub."""
    snap = store_snapshot(hub.reader, hub.cfg.data_dir)
    snap["devices"] = [h.to_dict() for h in hub.device_health()]
    snap["config"] = hub.config_status()
    #: the alarm: devices configured on this hub whose link is down
    snap["devices_down"] = [h.device_id for h in hub.device_health() if not h.connected]
    sync = hub.sync
    snap["sync"] = ({"state": sync.state, "url": hub.cfg.sync.url, "last_success_ms": sync.last_success_ms,
                     "last_error": sync.last_error, "batch_max": sync.batch_max}
                    if sync is not None else {"state": "disabled (no [sync] url)"})
    store = hub.store_health()
    snap["store"] = {"held_for_disk": store.held_for_disk, "disk_low": store.disk_low,
                     "last_error": store.last_error, "commits": store.commits}
    snap["quarantine"] = hub.quarantine.describe() if hub.quarantine else None
    snap["version"] = hub.version
    return snap


def api_routes(hub: HubView) -> list[Any]:
    """The JSON API's routes; every one needs a signed-in staff member or the console token."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from edge.web.auth import CONSOLE, STAFF
    from webui.security import require, session_of

    guard = require(STAFF, CONSOLE)

    def ok(data: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(data, status_code=status)

    def bad(message: str, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    last_view: dict[tuple[str, str], float] = {}

    async def viewed(request: Request, what: str) -> None:
        """Audit a view; a poller (``mchub edge status``, the demo's display) is logged once per
        ``VIEW_AUDIT_EVERY_S``, not on every poll."""
        key, at = (session_of(request).user, what), time.monotonic()
        if at - last_view.get(key, -VIEW_AUDIT_EVERY_S) < VIEW_AUDIT_EVERY_S:
            return
        last_view[key] = at
        await hub.audit("view", key[0], f"api: {what}")

    @guard
    async def status(request: Request) -> JSONResponse:
        await viewed(request, "status (sessions today, unbound readings)")
        return ok(await _in_thread(snapshot, hub))

    @guard
    async def devices(_: Request) -> JSONResponse:
        return ok([h.to_dict() for h in hub.device_health()])

    @guard
    async def sessions_today(request: Request) -> JSONResponse:
        await viewed(request, "sessions today")
        return ok(await _in_thread(hub.reader.sessions_since, start_of_today_ms()))

    @guard
    async def unbound(_: Request) -> JSONResponse:
        return ok(await _in_thread(hub.reader.unbound, 200))

    @guard
    async def open_session(request: Request) -> JSONResponse:
        doc = await _json(request)
        station = str(doc.get("station_id", ""))
        if station not in {s.id for s in hub.cfg.stations}:
            return bad(f"unknown station {station!r}")
        nid = doc.get("national_id")
        try:
            nid = idnum.normalise(str(nid)) if nid else None
            weeks = check_weeks(int(doc["pregnant_weeks"])) if doc.get("pregnant_weeks") is not None else None
        except (EdgeError, ValueError) as exc:
            return bad(str(exc))
        subject = Subject(national_id=nid, name=str(doc.get("name", ""))[:64], source="staff")
        session_id = await hub.identify(station, subject, weeks)
        await hub.audit("staff_entry", session_of(request).user, f"session opened at {station} "
                                     f"for {idnum.mask(nid) if nid else '-'}")
        return ok({"session_id": session_id}, 201)

    @guard
    async def close_session(request: Request) -> JSONResponse:
        doc = await _json(request)
        reason = doc.get("reason", "finished")
        if reason not in ("finished", "staff"):
            return bad("reason must be finished or staff")
        return ok({"closed": await hub.close_session(str(doc.get("station_id", "")), reason)})

    @guard
    async def bind(request: Request) -> JSONResponse:
        doc = await _json(request)
        session = session_of(request)
        by = session.user if session.role == STAFF else str(doc.get("by", session.user))[:64]
        try:
            seq = await hub.bind(request.path_params["uid"], str(doc.get("session_id", "")), by)
        except ValueError as exc:
            return bad(str(exc), 409)
        return ok({"seq": seq})

    def actor(request: Request, doc: dict[str, Any]) -> str:
        session = session_of(request)
        return session.user if session.role == STAFF else str(doc.get("by", session.user))[:64]

    @guard
    async def dead_letters(request: Request) -> JSONResponse:
        return ok(await _in_thread(hub.reader.dead_letters, request.query_params.get("all") != "1"))

    @guard
    async def resend_dead_letter(request: Request) -> JSONResponse:
        from edge.store.deadletters import DeadLetterError

        doc = await _json(request)
        drop = doc.get("drop_codes", [])
        if not isinstance(drop, list) or not all(isinstance(c, str) and len(c) <= 128 for c in drop[:64]):
            return bad("drop_codes must be a list of observation codes")
        try:
            seq = await hub.resend_dead_letter(int(request.path_params["seq"]), actor(request, doc),
                                               tuple(drop[:64]))
        except (DeadLetterError, ValueError) as exc:
            return bad(str(exc), 409)
        return ok({"seq": seq})

    @guard
    async def dismiss_dead_letter(request: Request) -> JSONResponse:
        from edge.store.deadletters import DeadLetterError

        doc = await _json(request)
        try:
            await hub.dismiss_dead_letter(int(request.path_params["seq"]), actor(request, doc))
        except (DeadLetterError, ValueError) as exc:
            return bad(str(exc), 409)
        return ok({"dismissed": True})

    return [
        Route("/api/status", status), Route("/api/devices", devices),
        Route("/api/dead-letters", dead_letters),
        Route("/api/dead-letters/{seq}/resend", resend_dead_letter, methods=["POST"]),
        Route("/api/dead-letters/{seq}/dismiss", dismiss_dead_letter, methods=["POST"]),
        Route("/api/sessions/today", sessions_today), Route("/api/readings/unbound", unbound),
        Route("/api/sessions", open_session, methods=["POST"]),
        Route("/api/sessions/close", close_session, methods=["POST"]),
        Route("/api/readings/{uid}/bind", bind, methods=["POST"]),
    ]


async def _in_thread(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args)


async def _json(request: Any) -> dict[str, Any]:
    try:
        doc = await request.json()
    except ValueError:
        doc = {}
    return doc if isinstance(doc, dict) else {}


def render(snap: dict[str, Any], language: str = "zh-CN", stations: dict[str, str] | None = None) -> str:
    """The status as text for a technician at the console: labels in Chinese then English
    (``待同步记录 / records waiting to sync``) like the CLI's other messages, English alone on a hub
    configured ``language = "en"``; stations by their names (``[[stations]] name``, the id where a
    station has none)."""
    from edge.web import LOCALES
    from webui.i18n import catalog

    cat = catalog(LOCALES)
    names = stations or {}

    def t(key: str, **kw: Any) -> str:
        en = cat.t(key, "en", **kw)
        zh = cat.t(key, "zh-CN", **kw)
        return en if language == "en" or zh == en else f"{zh} / {en}"

    def station(station_id: str | None) -> str:
        return names.get(station_id, station_id) if station_id else "-"

    def when(ms: int | None) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"

    lines = [f"{t('console.hub')}: {snap['hub_id']}  epoch {snap['epoch']}  {snap.get('version', '')}".rstrip()]
    lines.append(f"{t('console.queue')}: {snap['queue_depth']}  ({t('console.acked_through')} "
                 f"{snap['acked_through']}, {t('console.next_seq')} {snap['next_seq']})")
    age = snap["oldest_unsynced_age_s"]
    lines.append(f"{t('console.oldest')}: {when(snap['oldest_unsynced_ms'])}"
                 + (f" ({age:.0f} s)" if age is not None else ""))
    sync = snap.get("sync", {})
    last_ok = when(sync.get("last_success_ms") or snap["last_ack_ms"])
    state = str(sync.get("state", ""))
    state = "disabled" if state.startswith("disabled") else state
    shown = t(f"status.sync.{state}") if state and f"status.sync.{state}" in cat.messages["en"] else state or "-"
    lines.append(f"{t('console.sync')}: {shown}  {t('console.last_ok')} {last_ok}")
    err = sync.get("last_error") or snap["last_error"]
    if err:
        lines.append(f"{t('console.last_error')}: {err}")
    if snap.get("quarantine"):
        lines.append(f"!! {snap['quarantine']}")
    if snap.get("store", {}).get("disk_low"):
        lines.append(f"!! {t('console.disk_low')}")
    if "disk_free_bytes" in snap:
        lines.append(f"{t('console.disk')}: {snap['disk_free_bytes'] >> 20} MB")
    cfg = snap.get("config")
    if cfg and cfg["state"] != "local":
        lines.append(f"{t('console.config')}: {t('console.config_' + cfg['state'])}  "
                     f"{t('console.config_applied')} {cfg['applied']}  "
                     f"{t('console.config_desired')} {cfg['desired']}"
                     + (f"  ({cfg['error']})" if cfg["error"] else ""))
    if snap.get("devices_down"):
        lines.append(f"!! {t('console.devices_down')}: {', '.join(snap['devices_down'])}")
    devices = snap.get("devices")
    lines.append(f"{t('console.devices')}:"
                 + ("" if devices else f" {t('console.not_running' if devices is None else 'console.none')}"))
    for d in devices or []:
        state = t("console.connected") if d["connected"] else t("console.disconnected")
        lines.append(f"  {pad(d['device_id'], 16)} {pad(station(d['station_id']), 12)} {pad(d['driver'], 12)} "
                     f"{state}  {t('console.last_reading')} {when(d['last_reading_ms'])}  "
                     f"{t('console.errors')} {d['frame_errors']}"
                     + (f"  ({d['last_error']})" if d["last_error"] else ""))
    lines.append(f"{t('console.sessions_today')}: {len(snap['sessions_today'])}")
    for s in snap["sessions_today"][:10]:
        closed = t(f"status.closed.{s['close_reason']}") if s["close_reason"] else t("console.open")
        lines.append(f"  {when(s['opened_at'])} {pad(station(s['station_id']), 12)} {s['name_masked'] or '-'} "
                     f"{s['id_masked'] or ''}  {s['readings']} {t('console.readings')}  {closed}")
    lines.append(f"{t('console.unbound')}: {snap['unbound_count']}")
    if snap.get("dead_letters_open"):
        lines.append(f"!! {t('console.dead_letters', n=snap['dead_letters_open'])}")
        for d in snap.get("dead_letters", [])[:10]:
            lines.append(f"  seq {d['seq']:<8} {when(d['at'])} {pad(station(d['station_id']), 12)} "
                         f"{pad(d['device_id'] or '-', 12)} {d['reason']}: {t('deadletter.reason.' + d['reason'])}")
    return "\n".join(lines)


def pad(text: str, width: int) -> str:
    """``text`` left-aligned in ``width`` terminal columns (a Chinese character takes two)."""
    import unicodedata

    used = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(width - used, 0)
