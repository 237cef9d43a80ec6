"""Hub status page ``/`` for clinic staff (signed in), with live updates over SSE.

Shows every device with its state and last reading; the sync queue (depth, oldest
unsynced age, last sync, last error); whether the cloud and the MQTT broker can be
reached; free disk; today's sessions (masked); unbound readings with a form to bind each
one to a session; records the cloud refused (an alarm, with forms to resend each one,
optionally without some values, or dismiss it); and a form to open a session by hand (staff entry) for a patient
whose card could not be read. Binding goes through the ledger (a ``ReadingBound`` record
that syncs like any other) and is audited with the staff member's name; every view of
the page is audited too, and the page carries a watermark with the viewer's name.

``/events`` sends small named values (``data-live`` elements) and a ``reload`` message
when the lists change; it carries no patient data.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from edge.errors import EdgeError
from edge.hub_view import HubView
from edge.status import snapshot, start_of_today_ms
from protocol import idnum
from protocol.clinical.pregnancy import check_weeks
from protocol.errors import ClinicalError
from protocol.ids import now_ms
from protocol.model import Subject
from webui.security import session_of

if TYPE_CHECKING:
    from webui.render import Renderer

PROBE_EVERY_S = 15.0
LIVE_EVERY_S = 2.0


def when(ms: int | None) -> str:
    """Local time for a ms timestamp: ``HH:MM:SS`` today, else the date too."""
    if not ms:
        return "-"
    t = dt.datetime.fromtimestamp(ms / 1000)
    return t.strftime("%H:%M:%S" if t.date() == dt.date.today() else "%Y-%m-%d %H:%M")


def age(seconds: float | None) -> str:
    """``3 min`` / ``2 h`` / ``-``."""
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


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
    """The page, its live stream and its two forms."""

    def __init__(self, hub: HubView, renderer: Renderer, stopping: asyncio.Event | None = None) -> None:
        self.hub, self.renderer = hub, renderer
        self.reach = Reachability()
        self.stopping = stopping or asyncio.Event()  #: set when the hub stops: streams end
        self._figures: tuple[float, dict[str, Any], int | None, list[int]] | None = None

    def broker(self) -> bool | None:
        """MQTT broker connected (None: no [mqtt])."""
        return self.hub.broker_connected()

    async def live_values(self, lang: str) -> dict[str, str]:
        """The values the page updates live, as text in ``lang`` (no patient data)."""
        hub = self.hub

        def t(key: str) -> str:
            return self.renderer.catalog.t(key, lang)

        def mark(ok: bool | None, yes: str, no: str) -> str:
            return t("status.not_configured") if ok is None else f"✔ {t(yes)}" if ok else f"✘ {t(no)}"

        st, oldest, counts = await self._store_figures()
        sync = hub.sync
        out = {
            "queue_depth": str(st["next_seq"] - 1 - st["acked_through"]),
            "oldest_age": age((now_ms() - oldest) / 1000 if oldest else None),
            "last_sync": when(sync.last_success_ms if sync and sync.last_success_ms else st["last_ack_ms"]),
            "last_error": (sync.last_error if sync else None) or st["last_error"] or "-",
            "sync_state": t(f"status.sync.{sync.state if sync else 'disabled'}"),
            "disk": f"{hub.store_health().disk_free_bytes >> 20} MB",
            "cloud": mark(await self.reach.probe(hub.cfg.sync.url), "status.reachable", "status.unreachable"),
            "broker": mark(self.broker(), "console.connected", "console.disconnected"),
            "counts": json.dumps(counts),
        }
        cfg = hub.config_status()
        out["config"] = ("" if cfg["state"] == "local" else
                         f"{t('console.config_' + cfg['state'])} · {t('console.config_applied')} {cfg['applied']}"
                         f" / {t('console.config_desired')} {cfg['desired']}"
                         + (f" · {cfg['error']}" if cfg["error"] else ""))
        down = [h.device_id for h in hub.device_health() if not h.connected]
        out["devices_down"] = f"{t('console.devices_down')}: {', '.join(down)}" if down else ""
        for h in hub.device_health():
            out[f"dev-{h.device_id}-state"] = mark(h.connected, "console.connected", "console.disconnected")
            out[f"dev-{h.device_id}-last"] = when(h.last_reading_ms)
        return out

    async def _store_figures(self) -> tuple[dict[str, Any], int | None, list[int]]:
        """Sync state, oldest unsynced time and (unbound, sessions today, open dead letters) counts from hub.db,
        read at most once per ``LIVE_EVERY_S`` for all open pages (the counts scan the records)."""
        if self._figures is None or time.monotonic() - self._figures[0] >= LIVE_EVERY_S:
            reader = self.hub.reader

            def read() -> tuple[dict[str, Any], int | None, list[int]]:
                return (reader.state(), reader.oldest_unsynced_at(),
                        [reader.count_unbound(), len(reader.sessions_since(start_of_today_ms())),
                         reader.count_dead_letters()])  # a new refusal reloads open pages: the alarm shows

            self._figures = (time.monotonic(), *await asyncio.to_thread(read))
        return self._figures[1], self._figures[2], self._figures[3]

    async def page(self, request: Request) -> Response:
        """``GET /``."""
        hub = self.hub
        snap = await asyncio.to_thread(snapshot, hub)
        last = await asyncio.to_thread(hub.reader.last_readings)
        self._figures = None  # a page shows fresh figures (and its stream starts from them)
        lang = self.renderer.language(request)
        live = await self.live_values(lang)
        user = session_of(request).user
        await hub.audit("view", user, f"status page: {len(snap['sessions_today'])} sessions today, "
                                      f"{snap['unbound_count']} unbound readings")
        devices = []
        for d in snap["devices"]:
            reading = last.get(d["device_id"])
            values = ", ".join(f"{o['value']:g} {self.renderer.catalog.t('unit.' + o['unit'], lang)}"
                               for o in reading["observations"]) if reading else ""
            devices.append({**d, "last_values": values, "last_at": when(reading["at"] if reading else None)})
        return self.renderer.page(request, "status.html", {
            "snap": snap, "live": live, "devices": devices, "when": when,
            "stations": hub.cfg.stations, "flash": session_of(request).data.pop("flash", ""),
            "error": session_of(request).data.pop("error", ""),
        }, patient_data=True)

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
                for name, value in values.items():
                    if sent.get(name) != value:
                        if name == "counts" and "counts" in sent:
                            yield "data: reload\n\n"
                        yield f"event: {name}\ndata: {value}\n\n"
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
            return _back(request, error=self.renderer.catalog.t(exc.key, self.renderer.language(request)))
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


def _back(request: Request, flash: str = "", error: str = "") -> Response:
    """Back to the page with a one-time message kept in the session (nothing reflected from the URL)."""
    data = session_of(request).data
    if flash:
        data["flash"] = flash
    if error:
        data["error"] = error[:300]
    return RedirectResponse("/", 303)
