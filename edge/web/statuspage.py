"""Hub status page ``/`` for clinic staff (signed in), updated live without reloading.

Top to bottom, what needs action first:

1. **needs action** (``status_needs.html``): today's critically high blood pressures,
   records the cloud refused (resend, optionally without some values, or dismiss), readings
   not bound to a patient (each with a short list of its station's visits nearest in time to
   bind it to: :func:`edge.web.visits.bind_choices`), devices configured but not connected,
   and sync stuck (:func:`edge.web.visits.sync_stuck`);
2. **today's visits** with their values and flags, a search box, and "end visit" on the
   open ones;
3. the form to open a visit by hand (staff entry) for a patient whose card could not be read;
4. the sync queue, reachability of the cloud and the MQTT broker, free disk, the devices;
5. the recent actions (binds, staff entries, ended visits ...; views are audited but not listed).

Stations are shown by their names (``[[stations]] name``). Binding goes through the ledger (a
``ReadingBound`` record that syncs like any other); binding, opening and ending a visit are
audited with the staff member's name, and so is every view of patient data: the page or its
live lists (``GET /lists``) each time they show a visit the viewer had not yet been shown in
this sign-in, and the page at least once per ``VIEW_AUDIT_EVERY_S`` (10 minutes) while it is
reloaded. The page carries a watermark with the viewer's name.

``/events`` (SSE) sends small named values (``data-live`` elements, no patient data) and a
``refresh`` message when records were stored; ``webui/static/live.js`` then fetches ``/lists``
into the element whose ``data-refresh`` names it, unless staff are filling in a form there.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from edge.errors import EdgeError
from edge.hub_view import HubView
from edge.status import VIEW_AUDIT_EVERY_S, start_of_today_ms
from edge.web import visits as v
from protocol import idnum
from protocol.clinical.pregnancy import check_weeks
from protocol.errors import ClinicalError, IdNumberError
from protocol.ids import now_ms
from protocol.model import Subject
from webui.security import session_of

if TYPE_CHECKING:
    from webui.render import Renderer

PROBE_EVERY_S = 15.0
#: who the activity log names when no staff member acted (shown in the reader's language: ``actor.<name>``)
SYSTEM_ACTORS = frozenset({"cloud", "hub", "technician", "console"})
LIVE_EVERY_S = 2.0


def when(ms: int | None) -> str:
    """Local time for a ms timestamp: ``HH:MM:SS`` today, else the date too."""
    if not ms:
        return "-"
    t = dt.datetime.fromtimestamp(ms / 1000)
    return t.strftime("%H:%M:%S" if t.date() == dt.date.today() else "%Y-%m-%d %H:%M")


def age(seconds: float | None, t: Callable[..., str]) -> str:
    """``45 秒`` / ``3 分钟`` / ``2.0 小时`` (``t`` translates into the reader's language), ``-`` for none."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return t("status.age.s", n=f"{seconds:.0f}")
    if seconds < 7200:
        return t("status.age.min", n=f"{seconds / 60:.0f}")
    return t("status.age.h", n=f"{seconds / 3600:.1f}")


class Reachability:
    """Whether the cloud answers a TCP connection (probed at most every 15 s)."""

    def __init__(self) -> None:
        self.cloud: bool | None = None
        self._at = 0.0

    async def probe(self, url: str | None) -> bool | None:
        """True/False, or None when sync is disabled."""
        if not url:
            return None
        if time.monotonic() - self._at < PROBE_EVERY_S and self.cloud is not None:
            return self.cloud
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, port), 3)
            writer.close()
            self.cloud = True
        except (OSError, TimeoutError):
            self.cloud = False
        self._at = time.monotonic()
        return self.cloud


class StatusPage:
    """The page, its live lists and stream, and its forms."""

    def __init__(self, hub: HubView, renderer: Renderer, stopping: asyncio.Event | None = None) -> None:
        self.hub, self.renderer = hub, renderer
        self.reach = Reachability()
        self.stopping = stopping or asyncio.Event()  #: set when the hub stops: streams end
        self._figures: tuple[float, dict[str, Any], int | None, str] | None = None

    def station_names(self) -> dict[str, str]:
        """Station id -> the name people use (``一诊室``); the id when the station has no name."""
        return {s.id: s.name or s.id for s in self.hub.cfg.stations}

    def broker(self) -> bool | None:
        """MQTT broker connected (None: no [mqtt])."""
        return self.hub.broker_connected()

    async def live_values(self, lang: str) -> dict[str, str]:
        """The values the page updates live, as text in ``lang`` (no patient data)."""
        hub = self.hub

        def t(key: str, **values: object) -> str:
            return self.renderer.catalog.t(key, lang, **values)

        def mark(ok: bool | None, yes: str, no: str) -> str:
            return t("status.not_configured") if ok is None else f"✔ {t(yes)}" if ok else f"✘ {t(no)}"

        st, oldest, changes = await self._store_figures()
        sync = hub.sync
        down = self._down()
        oldest_age, last_error, stuck = self._sync_health(st, oldest)
        out = {
            "queue_depth": str(st["next_seq"] - 1 - st["acked_through"]),
            "oldest_age": age(oldest_age, t),
            "last_sync": when(sync.last_success_ms if sync and sync.last_success_ms else st["last_ack_ms"]),
            "last_error": last_error or "-",
            "sync_state": t(f"status.sync.{sync.state if sync else 'disabled'}"),
            "disk": f"{hub.store_health().disk_free_bytes >> 20} MB",
            "cloud": mark(await self.reach.probe(hub.cfg.sync.url), "status.reachable", "status.unreachable"),
            "broker": mark(self.broker(), "console.connected", "console.disconnected"),
            #: moves when the needs-action or visits sections would change: the page fetches /lists
            "changes": f"{changes}/{stuck}/{','.join(down)}",
        }
        cfg = hub.config_status()
        out["config"] = ("" if cfg["state"] == "local" else
                         f"{t('console.config_' + cfg['state'])} · {t('console.config_applied')} {cfg['applied']}"
                         f" / {t('console.config_desired')} {cfg['desired']}"
                         + (f" · {cfg['error']}" if cfg["error"] else ""))
        out["devices_down"] = f"{t('console.devices_down')}: {', '.join(down)}" if down else ""
        for h in hub.device_health():
            out[f"dev-{h.device_id}-state"] = mark(h.connected, "console.connected", "console.disconnected")
            out[f"dev-{h.device_id}-last"] = when(h.last_reading_ms)
        return out

    def _sync_health(self, st: dict[str, Any], oldest: int | None) -> tuple[float | None, str, bool]:
        """Age of the oldest unsynced record (s), the last sync error, and whether sync is stuck."""
        sync = self.hub.sync
        oldest_age = (now_ms() - oldest) / 1000 if oldest else None
        last_error = (sync.last_error if sync else None) or st["last_error"] or ""
        return oldest_age, last_error, sync is not None and v.sync_stuck(oldest_age, last_error, sync.state)

    def _down(self) -> list[str]:
        """Devices configured but not connected, as ``device (station name)``."""
        names = self.station_names()
        return [f"{h.device_id} ({names.get(h.station_id, h.station_id)})"
                for h in self.hub.device_health() if not h.connected]

    async def _store_figures(self) -> tuple[dict[str, Any], int | None, str]:
        """Sync state, oldest unsynced time and a change marker of the store (next seq, open dead
        letters: it moves whenever a record is stored or a refusal dealt with), read at most once per
        ``LIVE_EVERY_S`` for all open pages."""
        if self._figures is None or time.monotonic() - self._figures[0] >= LIVE_EVERY_S:
            reader = self.hub.reader

            def read() -> tuple[dict[str, Any], int | None, str]:
                st = reader.state()
                return st, reader.oldest_unsynced_at(), f"{st['next_seq']}/{reader.count_dead_letters()}"

            self._figures = (time.monotonic(), *await asyncio.to_thread(read))
        return self._figures[1], self._figures[2], self._figures[3]

    def _lists(self) -> dict[str, Any]:
        """Everything the needs-action and visits sections show (read from hub.db; run in a thread)."""
        reader, today = self.hub.reader, start_of_today_ms()
        oldest_age, last_error, stuck = self._sync_health(reader.state(), reader.oldest_unsynced_at())
        sessions = reader.sessions_since(today)
        today_visits = v.visits(sessions, reader.session_readings_since(today, (s["session_id"] for s in sessions)))
        unbound = reader.unbound(50)
        return {
            "visits": today_visits,
            "unbound": [{**r, "values": v.values([r]), "choices": v.bind_choices(r, today_visits)} for r in unbound],
            "unbound_count": reader.count_unbound(),
            "urgent": reader.urgent_since(today),
            "dead_letters": reader.dead_letters(open_only=True, limit=50),
            "dead_letters_open": reader.count_dead_letters(),
            "devices_down": self._down(),
            "sync_stuck": stuck, "oldest_age_s": oldest_age, "last_error": last_error,
            "stations": self.station_names(), "when": when, "age": age,
        }

    async def _audit_shown(self, request: Request, shown: list[v.Visit], what: str) -> None:
        """Audit a view of patient data (the page or its live lists) when it shows a visit this sign-in
        had not been shown yet, else once per ``VIEW_AUDIT_EVERY_S`` for the page: no entry per reload
        or refresh of the same data (one per load was ~7 rows a minute for one open tab, issue 21)."""
        data = session_of(request).data
        seen = set(filter(None, data.get("visits_shown", "").split(",")))
        ids = {x.session_id for x in shown}
        now = time.monotonic()
        if ids <= seen and (what == "lists" or now - float(data.get("view_audited", "-inf")) < VIEW_AUDIT_EVERY_S):
            return
        data["visits_shown"] = ",".join(sorted(ids | seen)[-500:])
        data["view_audited"] = repr(now)
        await self.hub.audit("view", session_of(request).user, f"status {what}: {len(shown)} visits today")

    async def page(self, request: Request) -> Response:
        """``GET /``."""
        hub = self.hub
        lists = await asyncio.to_thread(self._lists)
        state = await asyncio.to_thread(hub.reader.state)
        snap = {"hub_id": state["hub_id"], "version": hub.version, "disk_low": hub.store_health().disk_low,
                "quarantine": hub.quarantine.describe() if hub.quarantine else None}
        last = await asyncio.to_thread(hub.reader.last_readings)
        actions = await asyncio.to_thread(hub.reader.audit, 10, "view")
        self._figures = None  # a page shows fresh figures (and its stream starts from them)
        lang = self.renderer.language(request)
        live = await self.live_values(lang)
        await self._audit_shown(request, lists["visits"], "page")
        devices = []
        for d in (h.to_dict() for h in hub.device_health()):
            reading = last.get(d["device_id"])
            values = ", ".join(f"{o['value']:g} {self.renderer.catalog.t('unit.' + o['unit'], lang)}"
                               for o in reading["observations"]) if reading else ""
            devices.append({**d, "last_values": values, "last_at": when(reading["at"] if reading else None)})
        return self.renderer.page(request, "status.html", {
            **lists, "snap": snap, "live": live, "devices": devices, "actions": actions,
            "station_list": hub.cfg.stations, "system_actors": SYSTEM_ACTORS,
            "flash": session_of(request).data.pop("flash", ""),
            "error": session_of(request).data.pop("error", ""),
            "error_key": session_of(request).data.pop("error_key", ""),
        }, patient_data=True)

    async def lists(self, request: Request) -> Response:
        """``GET /lists``: the needs-action and visits sections alone (what live.js swaps in)."""
        lists = await asyncio.to_thread(self._lists)
        await self._audit_shown(request, lists["visits"], "lists")
        response = self.renderer.page(request, "status_lists.html", lists)
        response.headers["cache-control"] = "no-store"
        return response

    async def events(self, request: Request) -> Response:
        """``GET /events``: live values as named SSE events."""
        return StreamingResponse(self._stream(self.renderer.language(request)), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def _stream(self, lang: str) -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        sent: dict[str, str] = {}
        changed = asyncio.Event()
        self.hub.commit_listeners.append(changed.set)
        try:
            while not self.stopping.is_set():
                values = await self.live_values(lang)
                events = []
                for name, value in values.items():
                    if sent.get(name) != value:
                        if name == "changes":
                            if "changes" in sent:
                                events.append("data: refresh\n\n")  # records stored: the page fetches /lists
                            continue
                        events.append(f"event: {name}\ndata: {value}\n\n")
                if events:  # one write a tick: after a tab closed, one write finds out (not one per device)
                    yield "".join(events)
                sent = values
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), LIVE_EVERY_S)
                await asyncio.sleep(0.5)  # at most two updates a second under load
        finally:
            with contextlib.suppress(ValueError):
                self.hub.commit_listeners.remove(changed.set)

    async def bind(self, request: Request) -> Response:
        """``POST /readings/bind``: form fields ``uid``, ``session_id``."""
        form = await request.form()
        user = session_of(request).user
        try:
            seq = await self.hub.bind(str(form.get("uid", "")), str(form.get("session_id", "")), user)
        except ValueError as exc:
            return _back(request, error=str(exc))
        return _back(request, flash=f"bound:{seq}")

    async def close_visit(self, request: Request) -> Response:
        """``POST /sessions/close``: end the open visit ``session_id`` at ``station_id`` (reason ``staff``)."""
        form = await request.form()
        station, session_id = str(form.get("station_id", "")), str(form.get("session_id", ""))
        current = await asyncio.to_thread(self.hub.reader.current_session, station)
        if current is None or current["session_id"] != session_id:
            return _back(request, error=f"no open visit {session_id!r} at {station!r}",
                         error_key="status.error.not_open")
        await self.hub.close_session(station, "staff")
        await self.hub.audit("close", session_of(request).user,
                             f"visit ended at {station} for {current['name_masked'] or '-'} ({session_id})")
        return _back(request, flash="closed")

    async def open_session(self, request: Request) -> Response:
        """``POST /sessions/open``: staff entry (station, name, national id, pregnancy weeks)."""
        form = await request.form()
        station = str(form.get("station_id", ""))
        if station not in {s.id for s in self.hub.cfg.stations}:
            return _back(request, error=f"unknown station {station!r}")
        try:
            nid = str(form.get("national_id", "")).strip()
            nid_ok = idnum.normalise(nid) if nid else None
            weeks_text = str(form.get("pregnant_weeks", "")).strip()
            weeks = check_weeks(int(weeks_text)) if weeks_text else None
        except ClinicalError as exc:  # in the reader's language (the raw text is English)
            return _back(request, error=str(exc), error_key=exc.key)
        except IdNumberError as exc:
            return _back(request, error=str(exc), error_key="status.error.id_number")
        except (EdgeError, ValueError) as exc:
            return _back(request, error=str(exc))
        subject = Subject(national_id=nid_ok, name=str(form.get("name", ""))[:64].strip(), source="staff")
        await self.hub.identify(station, subject, weeks)
        await self.hub.audit("staff_entry", session_of(request).user,
                             f"session opened at {station} for {idnum.mask(nid_ok) if nid_ok else '-'}")
        return _back(request, flash="opened")

    async def resend_dead_letter(self, request: Request) -> Response:
        """``POST /dead-letters/resend``: form fields ``seq``, ``drop`` (codes to leave out, repeatable)."""
        from edge.store.deadletters import DeadLetterError

        form = await request.form()
        try:
            seq = await self.hub.resend_dead_letter(int(str(form.get("seq", ""))), session_of(request).user,
                                                    tuple(str(c)[:128] for c in form.getlist("drop")[:64]))
        except (DeadLetterError, ValueError) as exc:
            return _back(request, error=str(exc))
        return _back(request, flash=f"resent:{seq}")

    async def dismiss_dead_letter(self, request: Request) -> Response:
        """``POST /dead-letters/dismiss``: form field ``seq``."""
        from edge.store.deadletters import DeadLetterError

        form = await request.form()
        try:
            await self.hub.dismiss_dead_letter(int(str(form.get("seq", ""))), session_of(request).user)
        except (DeadLetterError, ValueError) as exc:
            return _back(request, error=str(exc))
        return _back(request, flash="dismissed")


def _back(request: Request, flash: str = "", error: str = "", error_key: str = "") -> Response:
    """Back to the page with a one-time message kept in the session (nothing reflected from the URL):
    ``error`` is the raw detail (behind 详情), ``error_key`` the catalog key of what it means."""
    data = session_of(request).data
    if flash:
        data["flash"] = flash
    if error:
        data["error"] = error[:300]
        data["error_key"] = error_key
    return RedirectResponse("/", 303)
