"""Jinja2 rendering for every page: autoescaped, zh-CN first, with the shared layout.

A package creates one :class:`Renderer` with its own template directory (searched before
``webui/templates``) and, optionally, its own locale directory. ``page()`` supplies every
template with ``t`` (translate into the request's language), ``lang``, ``other_lang``,
``csrf_token``, ``user`` and — when ``patient_data=True`` — a watermark with the viewer's
name and the time, as pages showing patient data must carry.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from webui.i18n import Catalog, choose_language
from webui.security import ANONYMOUS, session_of

HERE = Path(__file__).resolve().parent


class Renderer:
    """Templates + catalog for one application."""

    def __init__(self, template_dirs: Sequence[Path] = (), locale_dirs: Sequence[Path] = ()) -> None:
        self.catalog = Catalog()
        for d in locale_dirs:
            self.catalog.load_dir(d)
        self.env = Environment(
            loader=FileSystemLoader([*map(str, template_dirs), str(HERE / "templates")]),
            autoescape=select_autoescape(["html", "svg"]),
            trim_blocks=True, lstrip_blocks=True,
        )

    def language(self, request: Request) -> str:
        """The language for this request (``?lang=`` > cookie > Accept-Language > zh-CN)."""
        return choose_language(request.query_params.get("lang"), request.cookies.get("lang"),
                               request.headers.get("accept-language"))

    def page(self, request: Request, name: str, context: dict[str, Any] | None = None, *,
             status_code: int = 200, patient_data: bool = False) -> HTMLResponse:
        """Render ``name`` with the shared context; remembers an explicit ``?lang=`` in a cookie."""
        lang = self.language(request)
        session = session_of(request)
        user = "" if session.role == ANONYMOUS else session.user
        ctx: dict[str, Any] = {
            "request": request, "lang": lang, "other_lang": "en" if lang == "zh-CN" else "zh-CN",
            "t": partial(self.catalog.t, lang=lang), "csrf_token": session.csrf, "user": user,
            "role": session.role,
            "watermark": self.catalog.t("watermark", lang, user=user or "-",
                                        time=dt.datetime.now().strftime("%Y-%m-%d %H:%M")) if patient_data else "",
        }
        ctx.update(context or {})
        response = HTMLResponse(self.env.get_template(name).render(ctx), status_code)
        if request.query_params.get("lang") in ("zh-CN", "en"):
            response.set_cookie("lang", lang, max_age=365 * 86400, samesite="strict", httponly=True)
        return response


def static_mount(path: str = "/static/webui") -> Mount:
    """The shared CSS/JS (served by StaticFiles, which refuses path traversal)."""
    return Mount(path, app=StaticFiles(directory=str(HERE / "static")), name="webui-static")
