"""MCH register pages: pick a period and a site, see a register, download it as CSV or XLSX.

    GET /ui/registers                              the form and the chosen register on screen
    GET /ui/registers/download?name=&fmt=csv|xlsx  the file (same query parameters)

The period is inclusive at both ends. The file is named by register, institution and period
(:func:`cloud.mch.registers.file_name`; an ASCII ``filename=`` for old clients, the Chinese
name as RFC 6266 ``filename*``), and an XLSX sheet says the institution and period on top.

The tables come from the MCH case store (:func:`cloud.mch.queries.case_rows`: the latest
version of every case screened in the period, names masked, never an ID number) built by
:mod:`cloud.mch.registers`. Registers show patient data, so every view and download is
audited and the page carries the viewer's watermark.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cloud.mch import registers as reg
from cloud.mch.queries import REGISTERS, build_register, case_rows, institution, pack_rows, register_file
from cloud.mch.sources import CHINA
from cloud.server import offload
from cloud.web.shell import ADMIN, INTEGRATION, RENDER, audit_view, db_of, guard, page

ROLES = (ADMIN, INTEGRATION)
FIRST = next(iter(REGISTERS))


def _period(request: Request) -> tuple[dt.date, dt.date]:
    """The period asked for, both days included; by default this month so far, in China's calendar
    (cases are dated in China time: the server's UTC date would leave out today's cases before 08:00)."""
    today = dt.datetime.now(CHINA).date()
    try:
        start = dt.date.fromisoformat(request.query_params.get("start", ""))
    except ValueError:
        start = today.replace(day=1)
    try:
        end = dt.date.fromisoformat(request.query_params.get("end", ""))
    except ValueError:
        end = today
    return start, max(start, end)


async def _rows(request: Request) -> tuple[str, str, dt.date, dt.date, bytes]:
    name = request.query_params.get("name", FIRST)
    name = name if name in REGISTERS else FIRST
    site = request.query_params.get("site", "")[:64]
    start, end = _period(request)
    rows = await case_rows(db_of(request), start, end, site=site, at_rest=request.app.state.cloud.ingestor.at_rest)
    return name, site, start, end, await pack_rows(rows)


async def _table(request: Request) -> tuple[str, str, dt.date, dt.date, reg.Table]:
    name, site, start, end, packed = await _rows(request)
    return name, site, start, end, await offload.run(build_register, name, packed, start, end)


@guard(*ROLES)
async def register_page(request: Request) -> Response:
    """GET /ui/registers?name=&site=&start=&end=."""
    name, site, start, end, table = await _table(request)
    async with db_of(request).transaction() as tx:
        sites = [dict(r) for r in await tx.fetch("SELECT site_id, name FROM sites ORDER BY site_id")]
    await audit_view(request, "register", detail={"name": name, "site": site, "rows": len(table.rows)})
    zh = RENDER.language(request) == "zh-CN"
    scope = reg.scope_line(await institution(db_of(request), site), start, end, "zh" if zh else "en")
    return page(request, "registers.html", {"scope": scope,
        "names": list(REGISTERS), "name": name, "site": site, "sites": sites, "start": start.isoformat(),
        "end": end.isoformat(), "table": table,
        "zh": zh}, nav="registers", patient_data=True)


@guard(*ROLES)
async def download(request: Request) -> Response:
    """GET /ui/registers/download?name=&fmt=csv|xlsx&site=&start=&end=."""
    name, site, start, end, packed = await _rows(request)
    fmt = "xlsx" if request.query_params.get("fmt") == "xlsx" else "csv"
    lang = "zh" if RENDER.language(request) == "zh-CN" else "en"
    where = await institution(db_of(request), site)
    # building the table and the file is pure-Python CPU work (seconds for 10,000 rows): never on the event loop
    body, count, full_name = await offload.run(register_file, name, packed, start, end, fmt, lang, where)
    await audit_view(request, "register.download", detail={"name": name, "site": site, "fmt": fmt, "rows": count})
    media = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" if fmt == "xlsx"
             else "text/csv; charset=utf-8")
    safe_site = re.sub(r"[^A-Za-z0-9._-]", "_", site) or "all"
    ascii_name = f"{name}_{safe_site}_{start:%Y%m%d}-{end:%Y%m%d}.{fmt}"
    disposition = f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(full_name, safe='')}"
    return Response(body, media_type=media, headers={"Content-Disposition": disposition})


def routes() -> list[Route]:
    """The register routes (inside the /ui mount)."""
    return [Route("/registers", register_page), Route("/registers/download", download)]
