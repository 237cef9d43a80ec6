"""Read-only queries over the MCH tables, for the CLI and the dashboard pages.

Every function takes the :class:`~cloud.db.engine.Database` and returns plain dataclasses
or dicts (no ORM objects, no national ID numbers; names only masked). The dashboard
(``webui``) renders them; the CLI prints them.

    cases(...)           case list with state and completeness (what is still missing)
    case_detail(id)      one case with every version, its field errors and platform answer
    upload_queue()       record counts by upload status, and what is waiting or dead
    dead_letters()       refused uploads with the platform's words, replayable by outbox id
    followups(...)       follow-up tasks, open or overdue
    register(name, ...)  the five registers/statistics as :class:`cloud.mch.registers.Table`
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from cloud.db.engine import Database
from cloud.mch import registers
from cloud.mch.errors import MchError
from cloud.records.crypto_at_rest import AtRest, AtRestError
from protocol import idnum
from protocol.mch.records import case_from_json

Builder = Callable[..., registers.Table]
REGISTERS: dict[str, Builder] = {
    "breast-followup": registers.breast_followup_register,
    "mammography": registers.mammography_register,
    "breast-ultrasound": registers.ultrasound_register,
    "workload": registers.workload_statistics,
    "cervical-results": registers.cervical_result_statistics,
    "high-risk-pregnancy": registers.high_risk_pregnancy_register,
}


@dataclass(frozen=True)
class CaseRow:
    """One line of the case list."""

    case_id: str
    type: str
    subject_id: int | None
    site_id: str
    screened_on: str
    state: str
    missing: list[str]
    version: int
    upload: str | None  #: status of the latest record: held, queued, accepted, refused, superseded
    errors: int  #: blocking field errors of the latest version
    updated_ms: int


def _json(text: Any, default: Any) -> Any:
    try:
        return msgspec.json.decode(text) if text else default
    except msgspec.DecodeError:
        return default


_CASES = """
SELECT c.case_id, c.type, c.subject_id, c.site_id, c.screened_on, c.state, c.missing, c.version, c.updated_ms,
       r.status AS upload, r.errors
FROM mch_cases c LEFT JOIN mch_records r ON r.case_id = c.case_id AND r.version = c.version
WHERE ($1 = '' OR c.state = $2) AND ($3 = '' OR c.type = $4) AND ($5 = '' OR c.site_id = $6)
ORDER BY c.updated_ms DESC, c.case_id LIMIT $7 OFFSET $8"""


async def cases(db: Database, *, state: str = "", type: str = "", site: str = "", limit: int = 200,
                offset: int = 0) -> list[CaseRow]:
    """Cases, newest change first, filtered by state, type and site ("" = any)."""
    async with db.transaction() as tx:
        rows = await tx.fetch(_CASES, state, state, type, type, site, site, limit, offset)
    return [CaseRow(r["case_id"], r["type"], r["subject_id"], r["site_id"], r["screened_on"], r["state"],
                    _json(r["missing"], []), r["version"], r["upload"],
                    sum(e.get("severity", "error") == "error" for e in _json(r["errors"], [])), r["updated_ms"])
            for r in rows]


async def case_detail(db: Database, case_id: str) -> dict[str, Any]:
    """The case row, its derived values and corrections, and every version (newest first)."""
    async with db.transaction() as tx:
        case = await tx.fetchrow("SELECT * FROM mch_cases WHERE case_id = $1", case_id)
        if case is None:
            raise MchError(f"case {case_id} does not exist; list cases with `mchub cloud mch cases`")
        versions = await tx.fetch("SELECT r.*, o.id AS outbox_id, o.status AS outbox_status, o.attempts, o.last_error "
                                  "FROM mch_records r LEFT JOIN outbox o ON o.idempotency_key = r.outbox_key "
                                  "WHERE r.case_id = $1 ORDER BY r.version DESC", case_id)
        tasks = await tx.fetch("SELECT kind, status, due, zh, en FROM mch_followups WHERE case_id = $1 ORDER BY id",
                               case_id)
    return {
        **{k: case[k] for k in ("case_id", "type", "subject_id", "site_id", "screened_on", "state", "version")},
        "missing": _json(case["missing"], []), "derived": _json(case["derived"], {}),
        "overrides": _json(case["overrides"], {}), "sources": _json(case["sources"], []),
        "followups": [dict(t) for t in tasks],
        "versions": [{"version": v["version"], "status": v["status"], "record": _json(v["payload"], {}),
                      "errors": _json(v["errors"], []), "missing": _json(v["missing"], []),
                      "platform_error": _json(v["platform_error"], None), "created_ms": v["created_ms"],
                      "uploaded_ms": v["uploaded_ms"], "outbox_id": v["outbox_id"], "outbox_status": v["outbox_status"],
                      "attempts": v["attempts"], "last_error": v["last_error"]} for v in versions],
    }


async def upload_queue(db: Database, limit: int = 100) -> dict[str, Any]:
    """Records by upload status, outbox messages by status, and the records still waiting."""
    async with db.transaction() as tx:
        by_record = await tx.fetch("SELECT status, COUNT(*) AS n FROM mch_records GROUP BY status")
        by_outbox = await tx.fetch("SELECT status, COUNT(*) AS n FROM outbox WHERE topic = 'mch.upload' "
                                   "GROUP BY status")
        waiting = await tx.fetch(
            "SELECT o.id, o.idempotency_key, o.attempts, o.next_attempt_ms, o.last_error, r.case_id, r.version "
            "FROM outbox o JOIN mch_records r ON r.outbox_key = o.idempotency_key "
            "WHERE o.topic = 'mch.upload' AND o.status = 'pending' ORDER BY o.next_attempt_ms LIMIT $1", limit)
    return {"records": {r["status"]: r["n"] for r in by_record}, "outbox": {r["status"]: r["n"] for r in by_outbox},
            "waiting": [dict(r) for r in waiting]}


async def dead_letters(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    """Uploads that were given up: outbox id (for replay), case, version, attempts, the platform's words."""
    async with db.transaction() as tx:
        rows = await tx.fetch(
            "SELECT o.id, o.attempts, o.last_error, o.updated_ms, r.case_id, r.version, r.platform_error "
            "FROM outbox o LEFT JOIN mch_records r ON r.outbox_key = o.idempotency_key "
            "WHERE o.topic = 'mch.upload' AND o.status = 'dead' ORDER BY o.updated_ms DESC LIMIT $1", limit)
    return [{**{k: r[k] for k in ("id", "attempts", "last_error", "updated_ms", "case_id", "version")},
             "platform_error": _json(r["platform_error"], None)} for r in rows]


async def followups(db: Database, *, overdue_on: dt.date | None = None, status: str = "open",
                    site: str = "", limit: int = 500) -> list[dict[str, Any]]:
    """Follow-up tasks (``status`` open/closed/"" for all); with ``overdue_on``, only those due before it."""
    due_before = overdue_on.isoformat() if overdue_on else "9999-12-31"
    async with db.transaction() as tx:
        rows = await tx.fetch(
            "SELECT id, case_id, kind, subject_id, site_id, closes_on, due, zh, en, status, created_ms, closed_ms "
            "FROM mch_followups WHERE ($1 = '' OR status = $2) AND ($3 = '' OR site_id = $4) AND due < $5 "
            "ORDER BY due, id LIMIT $6", status, status, site, site, due_before, limit)
    return [dict(r) for r in rows]


RegisterRow = tuple[str, str, str]  #: a case's record payload (JSON), its site label and its masked subject label


async def case_rows(db: Database, start: dt.date, end: dt.date, *, site: str = "",
                    at_rest: AtRest | None = None) -> list[RegisterRow]:
    """Latest record of every case screened in [start, end] (at ``site``), names decrypted and masked.

    Plain data, so the register can be built in :mod:`cloud.server.offload`'s process (see
    :func:`pack_rows`); the decryption (fast, C) runs here in slices, yielding between them.
    """
    async with db.transaction() as tx:
        rows = await tx.fetch(
            "SELECT c.site_id, c.subject_id, r.payload, s.name AS site_name, p.name_enc FROM mch_cases c "
            "JOIN mch_records r ON r.case_id = c.case_id AND r.version = c.version "
            "LEFT JOIN sites s ON s.site_id = c.site_id LEFT JOIN subjects p ON p.id = c.subject_id "
            "WHERE c.screened_on >= $1 AND c.screened_on <= $2 AND ($3 = '' OR c.site_id = $4) "
            "ORDER BY c.screened_on, c.case_id", start.isoformat(), end.isoformat(), site, site)
    out: list[RegisterRow] = []
    for i, r in enumerate(rows):
        if i and i % 500 == 0:
            await asyncio.sleep(0)
        label = f"#{r['subject_id']}"
        if at_rest is not None and r["name_enc"]:
            with contextlib.suppress(AtRestError):  # a row sealed with another key keeps its number label
                label = idnum.mask_name(at_rest.open(bytes(r["name_enc"]), "subjects.name")) or label
        out.append((str(r["payload"]), r["site_name"] or r["site_id"], label))
    return out


def views_of(rows: list[RegisterRow]) -> list[registers.CaseView]:
    """The rows as the register builders read them."""
    return [registers.CaseView(case_from_json(payload), site, label) for payload, site, label in rows]


async def case_views(db: Database, start: dt.date, end: dt.date, *, site: str = "",
                     at_rest: AtRest | None = None) -> list[registers.CaseView]:
    """Latest content of every case screened in [start, end] (at ``site``) as the registers read it."""
    return views_of(await case_rows(db, start, end, site=site, at_rest=at_rest))


_SLICE = 500


async def pack_rows(rows: list[RegisterRow]) -> bytes:
    """The rows as one compressed blob for :func:`cloud.server.offload.run`.

    Handing 10,000 rows to the spare process as Python objects pickles ~10 MB in one call
    that holds the GIL (a stall of the event loop); here they are encoded in slices,
    yielding between them, and compressed in a thread (zlib releases the GIL).
    """
    parts = []
    for i in range(0, len(rows), _SLICE):
        parts.append(msgspec.msgpack.encode(rows[i:i + _SLICE]))
        await asyncio.sleep(0)
    return await asyncio.to_thread(zlib.compress, msgspec.msgpack.encode(parts), 1)


def unpack_rows(packed: bytes) -> list[RegisterRow]:
    """Inverse of :func:`pack_rows`."""
    rows: list[RegisterRow] = []
    for part in msgspec.msgpack.decode(zlib.decompress(packed), type=list[bytes]):
        rows += msgspec.msgpack.decode(part, type=list[tuple[str, str, str]])
    return rows


def _build(name: str, rows: list[RegisterRow], start: dt.date, end: dt.date) -> registers.Table:
    builder = REGISTERS.get(name)
    if builder is None:
        raise MchError(f"no register {name!r}; choose one of {', '.join(REGISTERS)}")
    return builder(views_of(rows), start, end)


def build_register(name: str, packed: bytes, start: dt.date, end: dt.date) -> registers.Table:
    """One register from :func:`pack_rows` (pure: run it with :func:`cloud.server.offload.run` in the cloud)."""
    return _build(name, unpack_rows(packed), start, end)


def register_file(name: str, packed: bytes, start: dt.date, end: dt.date, fmt: str, lang: str,
                  institution: str = "") -> tuple[bytes, int, str]:
    """The register as an XLSX or CSV file, its number of rows and its file name (institution and
    period in it; pure: for :func:`cloud.server.offload.run`)."""
    table = build_register(name, packed, start, end)
    body = (registers.to_xlsx([table], lang, institution=institution, start=start, end=end) if fmt == "xlsx"
            else registers.to_csv(table, lang))
    return body, len(table.rows), registers.file_name([table], institution, start, end, fmt, lang)


async def register(db: Database, name: str, start: dt.date, end: dt.date, *, site: str = "",
                   at_rest: AtRest | None = None) -> registers.Table:
    """One register or statistics table by its name (a key of :data:`REGISTERS`)."""
    return _build(name, await case_rows(db, start, end, site=site, at_rest=at_rest), start, end)


async def institution(db: Database, site: str) -> str:
    """How a register names its scope: the site's name and id, or "" for every site."""
    if not site:
        return ""
    async with db.transaction() as tx:
        row = await tx.fetchrow("SELECT name FROM sites WHERE site_id = $1", site)
    return f"{row['name']} ({site})" if row is not None and row["name"] else site
