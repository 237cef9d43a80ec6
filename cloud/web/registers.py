"""MCH register pages: pick a period and a site, see a register, download it as CSV or XLSX.

    GET /ui/registers                              the form and the chosen register on screen
    GET /ui/registers/download?name=&fmt=csv|xlsx  the file (same query parameters)

The tables are built by :mod:`cloud.mch.registers` from case views (masked names, never an
ID number). Registers show patient data, so every view and download is audited and the
page carries the viewer's watermark. :func:`load_views` reads the cases of a site and
period from the MCH case store; until that store is installed it returns None and the
page says the registers are not available yet.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cloud.db.engine import Database
from cloud.mch import registers as reg
from cloud.web.shell import ADMIN, INTEGRATION, RENDER, audit_view, db_of, guard, page

ROLES = (ADMIN, INTEGRATION)
Builder = Callable[[Iterable[reg.CaseView], dt.date, dt.date], reg.Table]
REGISTERS: dict[str, Builder] = {
    "breast_followup": reg.breast_followup_register,
    "mammography": reg.mammography_register,
    "ultrasound": reg.ultrasound_register,
    "workload": reg.workload_statistics,
    "cervical_results": reg.cervical_result_statistics,
}


async def load_views(db: Database, site_id: str, start: dt.date, end: dt.date) -> list[reg.CaseView] | None:
    """Case views of ``site_id`` ("" = every site) in ``[start, end]``; None: no MCH case store here."""
    return None


def _period(request: Request) -> tuple[dt.date, dt.date]:
    today = dt.date.today()
    try:
        start = dt.date.fromisoformat(request.query_params.get("start", ""))
    except ValueError:
        start = today.replace(day=1)
    try:
        end = dt.date.fromisoformat(request.query_params.get("end", ""))
    except ValueError:
        end = today
    return start, max(start, end)


async def _table(request: Request) -> tuple[str, str, dt.date, dt.date, reg.Table | None, bool]:
    name = request.query_params.get("name", "breast_followup")
    name = name if name in REGISTERS else "breast_followup"
    site = request.query_params.get("site", "")[:64]
    start, end = _period(request)
    views = await load_views(db_of(request), site, start, end)
    table = REGISTERS[name](views, start, end) if views is not None else None
    return name, site, start, end, table, views is not None


@guard(*ROLES)
async def register_page(request: Request) -> Response:
    """GET /ui/registers?name=&site=&start=&end=."""
    name, site, start, end, table, available = await _table(request)
    async with db_of(request).transaction() as tx:
        sites = [dict(r) for r in await tx.fetch("SELECT site_id, name FROM sites ORDER BY site_id")]
    if table is not None:
        await audit_view(request, "register", detail={"name": name, "site": site, "rows": len(table.rows)})
    return page(request, "registers.html", {
        "names": list(REGISTERS), "name": name, "site": site, "sites": sites, "start": start.isoformat(),
        "end": end.isoformat(), "table": table, "available": available,
        "zh": RENDER.language(request) == "zh-CN"}, nav="registers", patient_data=True)


@guard(*ROLES)
async def download(request: Request) -> Response:
    """GET /ui/registers/download?name=&fmt=csv|xlsx&site=&start=&end=."""
    name, site, start, end, table, _ = await _table(request)
    if table is None:
        return Response("MCH registers are not available in this cloud yet / 本系统尚未启用妇幼登记表", 404,
                        media_type="text/plain; charset=utf-8")
    fmt = "xlsx" if request.query_params.get("fmt") == "xlsx" else "csv"
    lang = "zh" if RENDER.language(request) == "zh-CN" else "en"
    await audit_view(request, "register.download", detail={"name": name, "site": site, "fmt": fmt,
                                                           "rows": len(table.rows)})
    body = reg.to_xlsx([table], lang) if fmt == "xlsx" else reg.to_csv(table, lang)
    media = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" if fmt == "xlsx"
             else "text/csv; charset=utf-8")
    safe_site = re.sub(r"[^A-Za-z0-9._-]", "_", site) or "all"
    filename = f"{name}_{safe_site}_{start:%Y%m%d}-{end:%Y%m%d}.{fmt}"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def routes() -> list[Route]:
    """The register routes (inside the /ui mount)."""
    return [Route("/registers", register_page), Route("/registers/download", download)]
