"""The registers and statistics clinics must produce, as tables (pure) and CSV/XLSX files.

* breast abnormal/suspicious follow-up register (乳腺癌筛查异常/可疑病例随访登记表)
* mammography register, breast ultrasound register
* screening workload statistics by site
* cervical screening result statistics by site

Each builder takes :class:`CaseView` items (the case plus how to show its site and
subject — a masked name, never an ID number) and a period, and returns a :class:`Table`
with zh-CN and English column titles. ``to_csv``/``to_xlsx`` render tables in one language.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.mch import valuesets as vs
from protocol.mch.followup import follow_ups
from protocol.mch.records import BreastCase, Case, CervicalCase


@dataclass(frozen=True)
class CaseView:
    """A case as a register shows it."""

    case: Case
    site_name: str
    subject_label: str  #: masked name, e.g. 张*


@dataclass(frozen=True)
class Column:
    """One column: key, zh-CN title, English title."""

    key: str
    zh: str
    en: str


@dataclass(frozen=True)
class Table:
    """A titled table; cell values are strings or numbers."""

    name: str  #: file/sheet name (ASCII)
    zh: str
    en: str
    columns: tuple[Column, ...]
    rows: list[dict[str, object]]


def _in(view: CaseView, start: dt.date, end: dt.date) -> bool:
    return start <= dt.date.fromisoformat(view.case.screened_on) <= end


def _label(value_set: vs.ValueSet, code: str | None) -> str:
    return "" if code is None else vs.display(value_set, code)


def _breast_columns() -> tuple[Column, ...]:
    return (
        Column("site", "机构", "site"), Column("case_id", "病例号", "case"), Column("subject", "姓名", "name"),
        Column("screened_on", "筛查日期", "screened on"), Column("palpation", "临床检查", "clinical exam"),
        Column("ultrasound", "超声BI-RADS", "ultrasound BI-RADS"),
        Column("mammography", "X线BI-RADS", "mammography BI-RADS"),
        Column("pathology", "病理诊断", "pathology"), Column("stage", "分期", "stage"),
        Column("follow_up", "待随访事项", "open follow-up"),
    )


def _breast_row(v: CaseView, b: BreastCase) -> dict[str, object]:
    return {
        "site": v.site_name, "case_id": b.case_id, "subject": v.subject_label, "screened_on": b.screened_on,
        "palpation": _label(vs.BREAST_PALPATION, b.palpation), "ultrasound": b.ultrasound_birads or "",
        "mammography": b.mammography_birads or "", "pathology": _label(vs.BREAST_PATHOLOGY, b.pathology),
        "stage": b.stage or "", "follow_up": "；".join(t.zh for t in follow_ups(b)),
    }


def _breasts(views: Iterable[CaseView], start: dt.date, end: dt.date) -> list[tuple[CaseView, BreastCase]]:
    out = [(v, v.case) for v in views if isinstance(v.case, BreastCase) and _in(v, start, end)]
    return sorted(out, key=lambda p: (p[1].screened_on, p[1].case_id))  # type: ignore[return-value]


def breast_followup_register(views: Iterable[CaseView], start: dt.date, end: dt.date) -> Table:
    """Breast cases with an abnormal exam, BI-RADS 0 or >= 3, or a pathology result."""
    rows = [
        _breast_row(v, b) for v, b in _breasts(views, start, end)
        if b.palpation not in (None, "normal") or b.pathology is not None
        or {b.ultrasound_birads, b.mammography_birads} & ({"0", "3"} | vs.SUSPICIOUS_BIRADS)
    ]
    return Table("breast_followup", "乳腺癌筛查异常/可疑病例随访登记表",
                 "Breast screening abnormal/suspicious follow-up register", _breast_columns(), rows)


def mammography_register(views: Iterable[CaseView], start: dt.date, end: dt.date) -> Table:
    """Every breast case with a mammography result."""
    rows = [_breast_row(v, b) for v, b in _breasts(views, start, end) if b.mammography_birads is not None]
    return Table("mammography", "乳腺X线检查登记表", "Mammography register", _breast_columns(), rows)


def ultrasound_register(views: Iterable[CaseView], start: dt.date, end: dt.date) -> Table:
    """Every breast case with an ultrasound result."""
    rows = [_breast_row(v, b) for v, b in _breasts(views, start, end) if b.ultrasound_birads is not None]
    return Table("breast_ultrasound", "乳腺超声检查登记表", "Breast ultrasound register", _breast_columns(), rows)


def workload_statistics(views: Iterable[CaseView], start: dt.date, end: dt.date) -> Table:
    """Per site: how many examinations of each kind were done in the period."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for v in views:
        if not _in(v, start, end):
            continue
        c, n = v.case, counts[v.site_name]
        if isinstance(c, CervicalCase):
            n["cervical"] += 1
            n["hpv"] += c.hpv not in (None, "not_done")
            n["cytology"] += bool(c.tbs or c.pap_class)
            n["via"] += c.via_vili not in (None, "not_done")
            n["colposcopy"] += c.colposcopy not in (None, "not_done")
        elif isinstance(c, BreastCase):
            n["breast"] += 1
            n["cbe"] += c.palpation is not None
            n["ultrasound"] += c.ultrasound_birads is not None
            n["mammography"] += c.mammography_birads is not None
    columns = (Column("site", "机构", "site"), Column("cervical", "宫颈癌筛查人数", "cervical screened"),
               Column("hpv", "HPV检测", "HPV tests"), Column("cytology", "细胞学检查", "cytology"),
               Column("via", "VIA/VILI", "VIA/VILI"), Column("colposcopy", "阴道镜检查", "colposcopies"),
               Column("breast", "乳腺癌筛查人数", "breast screened"), Column("cbe", "临床乳腺检查", "clinical exams"),
               Column("ultrasound", "乳腺超声", "ultrasounds"), Column("mammography", "乳腺X线", "mammograms"))
    rows = [{"site": site, **{c.key: n[c.key] for c in columns[1:]}} for site, n in sorted(counts.items())]
    return Table("workload", "筛查工作量统计表", "Screening workload statistics", columns, rows)


def cervical_result_statistics(views: Iterable[CaseView], start: dt.date, end: dt.date) -> Table:
    """Per site: screened, HPV positives, abnormal cytology by class, CIN2+ and cancers, detection rate."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for v in views:
        c = v.case
        if not isinstance(c, CervicalCase) or not _in(v, start, end):
            continue
        n = counts[v.site_name]
        n["screened"] += 1
        n["hpv_pos"] += c.hpv in vs.HPV_POSITIVE
        n["hpv_16_18"] += c.hpv in vs.HPV_16_18
        n["cyto_abnormal"] += c.tbs in vs.ABNORMAL_TBS
        n["hsil_plus"] += c.tbs in {"HSIL", "SCC", "AIS", "ADENOCARCINOMA", "ASC-H", "AGC-FN"}
        n["colpo_abnormal"] += c.colposcopy == "abnormal"
        n["cin2_plus"] += c.histology in {"CIN2", "CIN3", "AIS", "invasive"}
        n["cancer"] += c.histology == "invasive"
    columns = (Column("site", "机构", "site"), Column("screened", "筛查人数", "screened"),
               Column("hpv_pos", "HPV阳性", "HPV positive"), Column("hpv_16_18", "HPV16/18阳性", "HPV 16/18"),
               Column("cyto_abnormal", "细胞学异常", "abnormal cytology"),
               Column("hsil_plus", "高度病变及以上(细胞学)", "HSIL or worse (cytology)"),
               Column("colpo_abnormal", "阴道镜异常", "abnormal colposcopy"),
               Column("cin2_plus", "CIN2及以上", "CIN2 or worse"), Column("cancer", "宫颈癌", "cervical cancer"),
               Column("cin2_rate", "CIN2+检出率(/10万)", "CIN2+ detection per 100,000"))
    rows = []
    for site, n in sorted(counts.items()):
        row: dict[str, object] = {"site": site, **{c.key: n[c.key] for c in columns[1:-1]}}
        row["cin2_rate"] = round(n["cin2_plus"] * 100_000 / n["screened"], 1) if n["screened"] else 0.0
        rows.append(row)
    return Table("cervical_results", "宫颈癌筛查结果统计表", "Cervical screening result statistics", columns, rows)


def to_csv(table: Table, lang: str = "zh") -> bytes:
    """UTF-8 CSV with a byte-order mark (so Excel on a Chinese Windows opens it correctly)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.zh if lang == "zh" else c.en for c in table.columns])
    for row in table.rows:
        writer.writerow([row.get(c.key, "") for c in table.columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def to_xlsx(tables: Iterable[Table], lang: str = "zh") -> bytes:
    """One workbook, one sheet per table, a bold title row and a header row.

    Written in openpyxl's ``write_only`` mode (rows streamed, no cell objects kept): a
    10,000-row register stays small in memory. Pure-Python CPU work all the same (seconds):
    the cloud runs it through :func:`cloud.offload.run`, never on its event loop.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    title_font, header_font = Font(bold=True, size=14), Font(bold=True)
    for table in tables:
        sheet = book.create_sheet(table.name[:31])
        for i, column in enumerate(table.columns, start=1):
            sheet.column_dimensions[get_column_letter(i)].width = max(10, len(column.zh) * 2 + 2)
        title = WriteOnlyCell(sheet, value=table.zh if lang == "zh" else table.en)
        title.font = title_font
        sheet.append([title])
        headers = []
        for c in table.columns:
            cell = WriteOnlyCell(sheet, value=c.zh if lang == "zh" else c.en)
            cell.font = header_font
            headers.append(cell)
        sheet.append(headers)
        keys = [c.key for c in table.columns]
        for row in table.rows:
            sheet.append([row.get(k, "") for k in keys])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()
