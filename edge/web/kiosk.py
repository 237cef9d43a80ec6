"""Patient kiosk ``/kiosk/<station>``: walks the patient through one station, live, with no cloud.

Phases, computed from hub.db (the station's open session and its readings) and the live
cuff pressure the BP driver reports while inflating:

    idle        "please place your ID card"             no open session
    identified  her masked name, "please start"         session open, nothing measured yet
    measuring   live cuff pressure                      a live value in the last 3 s
    results     each result with its plain meaning      some of the station's devices reported
    summary     all results, the overall meaning,       every measuring device of the station
                a QR code of them, a "finish" button     reported; closes after [web] kiosk_summary_s

Every phase shows the station's step list (:mod:`edge.web.steps`: card, then each measuring
device in hub.toml's order) with the next step highlighted and named ("下一步：请测血压"). The
summary's QR code (:mod:`edge.web.summary_qr`) holds only the text the summary shows.

The page itself carries no patient data: the state arrives as rendered HTML over
Server-Sent Events (``/kiosk/<station>/events``). When the session closes the stream
sends the idle screen and ends, and the page reloads, so nothing of the patient stays in
the DOM, the page source or an open response. The kiosk shows only the masked name
(``王*``), never an ID number, and only the current session of its own station.
No login (it is a LAN kiosk); the finish button is a CSRF-protected POST.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse

from drivers.base import Measurement
from edge.hub_view import HubView
from edge.sessions import local_day, patient_of
from edge.web import results, steps, summary_qr
from protocol import codes
from webui.security import session_of

if TYPE_CHECKING:
    from webui.render import Renderer

log = logging.getLogger("edge.kiosk")
LIVE_FRESH_S = 3.0
KEEPALIVE_S = 15.0


class Kiosk:
    """State and change notification for every station's kiosk."""

    def __init__(self, hub: HubView, renderer: Renderer) -> None:
        self.hub, self.renderer = hub, renderer
        self.cuff: dict[str, tuple[float, float]] = {}  #: station -> (mm[Hg], wall-clock seconds)
        self._events: dict[str, asyncio.Event] = {}
        self._dirty = asyncio.Event()
        self._closing: dict[str, tuple[str, asyncio.Task[None]]] = {}  #: station -> (session, auto-finish)
        self.stopping = asyncio.Event()

    # --- inputs ------------------------------------------------------------------------
    def on_commit(self) -> None:
        """Records were committed: every station may have changed."""
        self._notify()
        self._dirty.set()

    def on_live(self, station_id: str, m: Measurement) -> None:
        """A live value (cuff pressure while the monitor inflates): shown, never stored."""
        for o in m.observations:
            if o.code == codes.CUFF_PRESSURE:
                self.cuff[station_id] = (o.value, time.time())
                self._notify(station_id)

    def _notify(self, station_id: str | None = None) -> None:
        for sid in [station_id] if station_id else list(self._events):
            event = self._events.pop(sid, None) if sid else None
            if event is not None:
                event.set()

    def _waiter(self, station_id: str) -> asyncio.Event:
        return self._events.setdefault(station_id, asyncio.Event())

    # --- state -------------------------------------------------------------------------
    def stations(self) -> dict[str, Any]:
        """Configured stations by id."""
        return {s.id: s for s in self.hub.cfg.stations}

    async def state(self, station_id: str) -> dict[str, Any]:
        """What the kiosk of ``station_id`` shows now (``session`` is internal, never rendered)."""
        reader = self.hub.reader
        station = self.stations().get(station_id)
        devices = station.devices if station else ()
        session = await asyncio.to_thread(reader.current_session, station_id)
        if session is None:
            self.cuff.pop(station_id, None)
            return {"phase": "idle", "steps": steps.steps(devices, False, ())}
        readings = await asyncio.to_thread(reader.session_readings, session["session_id"], session["opened_at"])
        who = patient_of(session["opened_at"], session["age_days"], session["sex"], session["pregnant_weeks"])
        today = local_day(int(time.time() * 1000))
        rows = results.rows(readings, self.hub.bp_thresholds, who, today)
        cuff = None
        if station_id in self.cuff:
            value, at = self.cuff[station_id]
            # a reading stored in the same millisecond as the last cuff value ends the measuring
            after_last_reading = int(at * 1000) > (readings[-1]["at"] if readings else 0)
            if after_last_reading and time.time() - at < LIVE_FRESH_S:
                cuff = round(value)
        station_steps = steps.steps(devices, True, readings, measuring="bp" if cuff is not None else None)
        all_done = any(s.name != "card" for s in station_steps) and steps.next_step(station_steps) is None
        phase = ("measuring" if cuff is not None else "summary" if all_done
                 else "results" if rows else "identified")
        return {"phase": phase, "session": session["session_id"], "name": session["name_masked"] or "",
                "cuff": cuff, "rows": rows, "overall": results.worst(rows), "steps": station_steps,
                "next": steps.next_step(station_steps), "day": today}

    def fragment(self, state: dict[str, Any], station_id: str, lang: str, csrf_token: str) -> str:
        """The kiosk's main area for ``state`` (escaped HTML; the summary's QR code is built here)."""
        def t(key: str, **kw: Any) -> str:
            return self.renderer.catalog.t(key, lang, **kw)

        view = {k: v for k, v in state.items() if k not in ("session", "day")}
        station = self.stations().get(station_id)
        station_name = (station.name if station else "") or station_id
        if state["phase"] == "summary":
            text = summary_qr.payload(state["rows"], state["overall"], station_name, state["day"], t)
            view["qr"] = Markup(summary_qr.svg(text))  # noqa: S704 - segno's own SVG: paths only, no text
        return self.renderer.env.get_template("kiosk_state.html").render(
            **view, t=t, station=station_id, csrf_token=csrf_token, summary_s=int(self.hub.cfg.web.kiosk_summary_s))

    # --- auto-finish -------------------------------------------------------------------
    async def run(self) -> None:
        """Close a session that has shown its summary for ``kiosk_summary_s`` (patient finished)."""
        last_error = ""
        while not self.stopping.is_set():
            await self._dirty.wait()
            self._dirty.clear()
            for station_id in self.stations():
                try:
                    st = await self.state(station_id)
                except Exception as exc:  # a screen's fault must not stop the hub that stores readings
                    if repr(exc) != last_error:  # once per distinct fault, not at every commit
                        log.exception("kiosk of station %s: its state could not be read", station_id)
                    last_error = repr(exc)
                    continue
                pending = self._closing.get(station_id)
                if st["phase"] == "summary" and (pending is None or pending[0] != st["session"]):
                    task = asyncio.create_task(self._finish_later(station_id, st["session"]))
                    self._closing[station_id] = (st["session"], task)
            await asyncio.sleep(0.1)  # coalesce bursts of commits

    async def _finish_later(self, station_id: str, session_id: str) -> None:
        await asyncio.sleep(self.hub.cfg.web.kiosk_summary_s)
        await self.finish(station_id, session_id)

    async def finish(self, station_id: str, session_id: str | None = None) -> bool:
        """Close the station's session (reason ``finished``) if it is still ``session_id``."""
        current = await asyncio.to_thread(self.hub.reader.current_session, station_id)
        if current is None or (session_id is not None and current["session_id"] != session_id):
            return False
        await self.hub.close_session(station_id, "finished")
        return True

    def stop(self) -> None:
        """End every stream (kiosk and status page share ``stopping``) and timer (hub shutdown)."""
        self.stopping.set()
        self._dirty.set()
        self._notify()
        for _, task in self._closing.values():
            task.cancel()

    # --- HTTP --------------------------------------------------------------------------
    async def page(self, request: Request) -> Response:
        """The kiosk page: layout only; the state arrives over SSE."""
        station_id = request.path_params["station"]
        lang = self.renderer.language(request)
        if station_id not in self.stations():
            return PlainTextResponse(self.renderer.catalog.t("kiosk.unknown_station", lang), 404)
        station = self.stations()[station_id]
        return self.renderer.page(request, "kiosk.html", {
            "station": station, "steps": steps.steps(station.devices, False, ()),
            "events": f"/kiosk/{station_id}/events?lang={lang}"})

    async def events(self, request: Request) -> Response:
        """Server-Sent Events: ``state`` events with the rendered main area."""
        station_id = request.path_params["station"]
        if station_id not in self.stations():
            return PlainTextResponse(self.renderer.catalog.t("kiosk.unknown_station", self.renderer.language(request)),
                                     404)
        lang = self.renderer.language(request)
        csrf = session_of(request).csrf
        return StreamingResponse(self._stream(station_id, lang, csrf), media_type="text/event-stream",
                                 headers={"cache-control": "no-store", "x-accel-buffering": "no"})

    async def _stream(self, station_id: str, lang: str, csrf: str) -> AsyncIterator[str]:
        yield "retry: 1000\n\n"
        last, shown_patient = None, False
        while not self.stopping.is_set():
            changed = self._waiter(station_id)
            st = await self.state(station_id)
            html = self.fragment(st, station_id, lang, csrf)
            if html != last:
                yield f"event: state\ndata: {json.dumps({'phase': st['phase'], 'html': html})}\n\n"
                last = html
                if st["phase"] == "idle" and shown_patient:
                    return  # the session closed: end this response; the page reloads clean
                shown_patient = st["phase"] != "idle"
            timeout = 1.0 if st["phase"] == "measuring" else KEEPALIVE_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout)
                continue
            yield ": keep-alive\n\n"

    async def finish_post(self, request: Request) -> Response:
        """The patient pressed "finish" (CSRF-checked by the middleware)."""
        station_id = request.path_params["station"]
        if station_id not in self.stations():
            return PlainTextResponse(self.renderer.catalog.t("kiosk.unknown_station", self.renderer.language(request)),
                                     404)
        await self.finish(station_id)
        return RedirectResponse(f"/kiosk/{station_id}", 303)
