"""``mchub cloud mch``: 妇幼数据上报 / MCH cases, uploads, follow-ups and registers.

Registered by :mod:`cloud.cli`; handlers import their modules lazily so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

EPILOG = """\
examples / 示例:
  mchub cloud mch backfill --since 2022-01-01     build cases from all data since that day (resumable)
  mchub cloud mch cases --state invalid           cases held by field errors / 有字段错误而暂缓上报的个案
  mchub cloud mch show CX-42-20250301             every version with its field errors and the platform's answer
  mchub cloud mch correct CX-42-20250301 colposcopy=not_done --reason "patient declined"
  mchub cloud mch upload                          send what is due now (the cloud does this by itself)
  mchub cloud mch queue                           upload queue and dead letters (replay: mchub cloud outbox replay ID)
  mchub cloud mch followups --overdue             overdue follow-up tasks / 逾期随访
  mchub cloud mch register workload --from 2025-01-01 --to 2025-03-31 --out q1.xlsx
registers / 登记表: breast-followup, mammography, breast-ultrasound, workload, cervical-results,
    high-risk-pregnancy, all (xlsx)
"""

Handler = Callable[[Any, argparse.Namespace], Awaitable[int]]


async def _db(cfg: Any) -> Any:
    from cloud.db.engine import Database
    from cloud.server.serve import migrate_database

    await migrate_database(cfg)
    return await Database.connect(cfg.database.url, 2)


def _with_db(fn: Callable[[Any, Any, argparse.Namespace], Awaitable[int]]) -> Handler:
    async def handler(cfg: Any, args: argparse.Namespace) -> int:
        db = await _db(cfg)
        try:
            return await fn(db, cfg, args)
        finally:
            await db.close()

    return handler


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write YYYY-MM-DD, e.g. 2022-01-01") from exc


async def _backfill(db: Any, cfg: Any, args: argparse.Namespace) -> int:
    from cloud.mch import assembler, service

    def bar(r: assembler.BackfillReport) -> None:
        done = int(30 * r.subjects / r.total) if r.total else 30
        print(f"\r  [{'#' * done}{'.' * (30 - done)}] {r.subjects}/{r.total} subjects, {r.versions} new version(s) "
              f"({r.queued} queued, {r.held} held)", end="", file=sys.stderr, flush=True)

    report = await assembler.backfill(db, service.context(cfg), args.since, restart=args.restart,
                                      progress=None if args.quiet else bar)
    if not args.quiet and report.total:
        print(file=sys.stderr)
    resumed = f" (resumed after subject {report.resumed_after})" if report.resumed_after else ""
    print(f"backfill since {args.since}: {report.subjects} subject(s){resumed}, {report.versions} new case "
          f"version(s): {report.queued} queued for upload, {report.held} held")
    return 0


async def _cases(db: Any, cfg: Any, args: argparse.Namespace) -> int:
    from cloud.mch import queries

    rows = await queries.cases(db, state=args.state, type=args.type, site=args.site, limit=args.limit)
    print(f"{'case':<34} {'type':<9} {'site':<10} {'date':<10} {'state':<10} {'v':>3} {'upload':<10} missing")
    for r in rows:
        print(f"{r.case_id:<34} {r.type:<9} {r.site_id:<10} {r.screened_on:<10} {r.state:<10} {r.version:>3} "
              f"{r.upload or '-':<10} {', '.join(r.missing) or '-'}")
    print(f"{len(rows)} case(s)" if rows else "没有符合条件的个案 / 0 case(s) match")
    return 0


async def _show(db: Any, cfg: Any, args: argparse.Namespace) -> int:
    from cloud.mch import queries

    d = await queries.case_detail(db, args.case)
    print(f"{d['case_id']} ({d['type']}) subject #{d['subject_id']} site {d['site_id']} screened {d['screened_on']}: "
          f"{d['state']}, version {d['version']}; missing: {', '.join(d['missing']) or '-'}")
    if d["overrides"]:
        print(f"  corrections: {d['overrides']}")
    for t in d["followups"]:
        print(f"  follow-up {t['kind']} ({t['status']}) due {t['due']}: {t['zh']} / {t['en']}")
    for v in d["versions"]:
        outbox = f", outbox #{v['outbox_id']} {v['outbox_status']} after {v['attempts']} attempt(s)" \
            if v["outbox_id"] else ""
        print(f"  v{v['version']} {v['status']}{outbox}")
        for e in v["errors"]:
            print(f"    {e.get('severity', 'error')} {e['field']}: {e['zh']} / {e['en']}")
        if v["platform_error"]:
            print(f"    platform: {v['platform_error'].get('reason')}")
    return 0


def _value(text: str) -> Any:
    import msgspec

    if text == "":
        return None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


async def _correct(db: Any, cfg: Any, args: argparse.Namespace) -> int:
    import os

    from cloud.mch import assembler, service, store
    from cloud.mch.errors import MchError

    changes = {}
    for item in args.changes:
        name, sep, value = item.partition("=")
        if not sep:
            raise MchError(f"{item!r}: write FIELD=VALUE (FIELD= removes a correction)")
        changes[name.strip()] = _value(value.strip())
    async with db.transaction() as tx:
        await store.correct(tx, args.case, changes, actor=f"cli:{os.environ.get('USER', '?')}", reason=args.reason)
        subject = await tx.fetchval("SELECT subject_id FROM mch_cases WHERE case_id = $1", args.case)
    saved = [s for s in await assembler.assemble_subject(db, int(subject), service.context(cfg))
             if s.case_id == args.case]
    for s in saved:
        print(f"{s.case_id}: {s.outcome}, version {s.version}, state {s.state}")
        for e in s.errors:
            print(f"  {e.severity} {e.field}: {e.zh} / {e.en}")
    return 0


async def _upload(db: Any, cfg: Any, args: argparse.Namespace) -> int:
    from cloud.mch import service, uploader
    from cloud.mch.errors import MchError

    if not cfg.mch.platform_url:
        raise MchError(f"{cfg.path}: [mch] platform_url is empty.\n  Fix: set it to the platform's base URL")
    n = await uploader.drain(db, cfg, service.context(cfg).profile)
    print(f"{n} upload(s) tried")
    return 0


async def _queue(db: Any, cfg: Any, args: argparse.Namespace) -> int:
    from cloud.mch import queries

    q = await queries.upload_queue(db)
    print("records:", ", ".join(f"{k} {v}" for k, v in sorted(q["records"].items())) or "没有 / none")
    print("outbox: ", ", ".join(f"{k} {v}" for k, v in sorted(q["outbox"].items())) or "没有 / none")
    for w in q["waiting"]:
        print(f"  waiting #{w['id']} {w['case_id']} v{w['version']} attempts {w['attempts']}: {w['last_error'] or ''}")
    for d in await queries.dead_letters(db):
        print(f"  dead #{d['id']} {d['case_id']} v{d['version']} after {d['attempts']} attempt(s): {d['last_error']}")
    return 0


async def _followups(db: Any, cfg: Any, args: argparse.Namespace) -> int:
    from cloud.mch import queries
    from cloud.mch.sources import CHINA

    today = dt.datetime.now(CHINA).date()  # due dates are China dates
    rows = await queries.followups(db, overdue_on=today if args.overdue else None, site=args.site)
    for r in rows:
        late = " OVERDUE/逾期" if r["due"] < today.isoformat() else ""
        print(f"#{r['id']} {r['case_id']} subject #{r['subject_id']} site {r['site_id']} due {r['due']}{late}: "
              f"{r['zh']} / {r['en']}")
    print(f"{len(rows)} open task(s)" if rows else "没有未完成的随访任务 / 0 open task(s)")
    return 0


async def _register(db: Any, cfg: Any, args: argparse.Namespace) -> int:
    from cloud.errors import CloudError
    from cloud.intake.keystore import load_keys
    from cloud.mch import queries, registers
    from cloud.mch.errors import MchError
    from cloud.records.crypto_at_rest import AtRest

    try:
        keys = load_keys(cfg.keys_dir)
        at_rest: AtRest | None = AtRest(keys.at_rest, keys.blind_index)
    except CloudError:
        at_rest = None  # no keys here: subjects are labelled by number
    names = list(queries.REGISTERS) if args.name == "all" else [args.name]
    if args.end < args.start:
        raise MchError(f"--to {args.end} is before --from {args.start}; both days are included, so --to is the "
                       "last day wanted")
    fmt = args.format or ("xlsx" if str(args.out or "").endswith(".xlsx") or len(names) > 1 else "csv")
    if fmt == "csv" and len(names) > 1:
        raise MchError("several registers go into one XLSX workbook: use --format xlsx (or --out NAME.xlsx)")
    tables = [await queries.register(db, n, args.start, args.end, site=args.site, at_rest=at_rest) for n in names]
    where = await queries.institution(db, args.site)
    data = (registers.to_xlsx(tables, args.lang, institution=where, start=args.start, end=args.end) if fmt == "xlsx"
            else registers.to_csv(tables[0], args.lang))
    out = Path(args.out or registers.file_name(tables, where, args.start, args.end, fmt, args.lang))
    await asyncio.to_thread(out.write_bytes, data)
    print(f"wrote {out}: " + ", ".join(f"{t.zh} ({len(t.rows)} row(s))" for t in tables)
          + f"; {registers.period_text(args.start, args.end, args.lang)}")
    return 0


def register(sub: Any, add: Callable[..., Any], run: Callable[[Handler], Callable[[argparse.Namespace], int]]) -> None:
    """Add ``mchub cloud mch ...`` to the cloud subcommands."""
    p = sub.add_parser("mch", help="妇幼 / MCH cases, uploads, follow-ups, registers", description=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    mch = p.add_subparsers(dest="mch_command", metavar="ACTION")
    p = add("backfill", "补建个案 / build cases from historical data since a date (resumable; uploads follow)",
            run(_with_db(_backfill)), mch)
    p.add_argument("--since", type=_date, required=True, help="起始日期 / first day, YYYY-MM-DD")
    p.add_argument("--restart", action="store_true", help="从头开始，而不是从上次中断处继续 / "
                                                          "start over instead of resuming after the last subject")
    p.add_argument("--quiet", action="store_true", help="不显示进度条 / no progress bar")
    p = add("cases", "个案列表 / list cases with state and what is missing", run(_with_db(_cases)), mch)
    p.add_argument("--state", default="", choices=["", "incomplete", "invalid", "ready", "uploaded", "refused"])
    p.add_argument("--type", default="", choices=["", "cervical", "breast", "growth", "prenatal"])
    p.add_argument("--site", default="")
    p.add_argument("--limit", type=int, default=100)
    p = add("show", "个案详情 / one case: versions, field errors, platform answers, follow-ups",
            run(_with_db(_show)), mch)
    p.add_argument("case")
    p = add("correct", "更正个案 / correct fields of a case (audited); a changed record becomes a new version",
            run(_with_db(_correct)), mch)
    p.add_argument("case")
    p.add_argument("changes", nargs="+", metavar="FIELD=VALUE", help="要更正的字段 / "
                                                                     "e.g. colposcopy=not_done age_years=45")
    p.add_argument("--reason", required=True, help="原因（记入审计日志） / why (kept in the audit log)")
    add("upload", "上传 / upload what is due now to [mch] platform_url", run(_with_db(_upload)), mch)
    add("queue", "上传队列 / upload queue by state and dead letters with the platform's reason",
        run(_with_db(_queue)), mch)
    p = add("followups", "随访任务 / open follow-up tasks", run(_with_db(_followups)), mch)
    p.add_argument("--overdue", action="store_true", help="只列出已逾期的任务 / only tasks past their due date")
    p.add_argument("--site", default="")
    p = add("register", "登记表 / write a register or statistics table as CSV or XLSX", run(_with_db(_register)), mch)
    p.add_argument("name", help="登记表名称 / register name: breast-followup, workload, ... (every register of "
                                "docs/mch.md), or all")
    p.add_argument("--from", dest="start", type=_date, required=True, help="首日 / first day, YYYY-MM-DD")
    p.add_argument("--to", dest="end", type=_date, required=True,
                   help="末日（含）/ last day, YYYY-MM-DD, included")
    p.add_argument("--site", default="", help="机构编号（默认：全部机构） / one site id (default: all sites)")
    p.add_argument("--format", choices=["csv", "xlsx"], help="文件格式 / default: from --out, else csv")
    p.add_argument("--lang", choices=["zh", "en"], default="zh", help="列标题语言 / column titles (default zh)")
    p.add_argument("--out", help="输出文件 / output file (default: <register>_<institution>_<from>至<to>.xlsx|csv "
                                 "in this directory)")
