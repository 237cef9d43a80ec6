"""The hub's web pages, served by Starlette inside the hub process on ``[web] bind:port``.

    app          the application: route table, sessions/CSRF middleware, console token
    kiosk        ``/kiosk/<station>``: the patient's screen at a station (no login, live over SSE)
    statuspage   ``/``: devices, sync, sessions, unbound readings for staff (login, live over SSE)
    auth         staff sign-in (PIN or password, hashed in hub.toml), lockout, console token
    results      plain-language meaning of a patient's results (normal / slightly high / see the nurse)

Templates, static files and the hub's zh-CN/English catalogs live beside this file; the
shared layer (sessions, CSRF, roles, layout) is :mod:`webui`.
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
LOCALES = HERE / "locales"
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
