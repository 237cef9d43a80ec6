"""The registers and statistics clinics must produce, as tables (pure) and CSV/XLSX files.

* breast abnormal/suspicious follow-up register (乳腺癌筛查异常/可疑病例随访登记表)
* mammography register, breast ultrasound register
* screening workload statistics by site
* cervical screening result statistics by site
* high-risk pregnancy register (高危孕产妇专案登记: orange, red and purple by the 2017 five-colour table)

Each builder takes :class:`CaseView` items (the case plus how to show its site and
subject — a masked name, never an ID number) and a period, and returns a :class:`Table`
with zh-CN and English column titles. ``to_csv``/``to_xlsx`` render tables in one language.

Periods are inclusive at both ends everywhere (page, download, CLI): ``start <= screened_on <= end``.
An XLSX sheet is named by the table's title in the chosen language (Excel: at most 31
characters, none of ``[ ] : * ? /`` or a backslash, unique in the workbook); its first rows name the
register, the institution and the period; :func:`file_name` names a download the same way.
These work on any :class:`Table`, so a new register in ``cloud.mch.queries.REGISTERS`` gets
them without more code.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from protocol.clinical.risk import table as risk_table
from protocol.mch import valuesets as vs
from protocol.mch.followup import follow_ups
from protocol.mch.records import BreastCase, Case, CervicalCase, PrenatalVisit


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


_COLOUR_ZH = {"green": "绿色", "yellow": "黄色", "orange": "橙色", "red": "红色", "purple": "紫色"}


def high_risk_pregnancy_register(views: Iterable[CaseView], start: dt.date, end: dt.date) -> Table:
    """Women graded orange, red or purple at a visit in [start, end], the rows that graded them, and
    the open case-management task (国卫办妇幼发〔2017〕35号: 纳入高危孕产妇专案管理)."""
    columns = (
        Column("site", "机构", "site"), Column("case_id", "病例号", "case"), Column("subject", "姓名", "name"),
        Column("screened_on", "检查日期", "visit date"), Column("weeks", "孕周", "weeks"),
        Column("colour", "风险分级", "risk colour"), Column("items", "评估依据", "assessment items"),
        Column("bp", "血压", "blood pressure"), Column("managed_on", "纳入专案日期", "in case management since"),
        Column("due", "随访截止", "follow-up due"),
    )
    texts = {i.id: i.text for i in risk_table().items}
    rows: list[dict[str, object]] = []
    for v in views:
        p = v.case
        if not isinstance(p, PrenatalVisit) or not _in(v, start, end):
            continue
        if p.risk_colour not in ("orange", "red") and not p.risk_purple:
            continue
        colours = [c for c in (p.risk_colour, "purple" if p.risk_purple else None) if c]
        due = [t.due for t in follow_ups(p) if t.kind == "high_risk_management"]
        rows.append({
            "site": v.site_name, "case_id": p.case_id, "subject": v.subject_label, "screened_on": p.screened_on,
            "weeks": p.gestational_weeks or "", "colour": "、".join(_COLOUR_ZH[c] for c in colours),
            "items": "；".join(texts.get(i, i) for i in p.risk_items),
            "bp": f"{p.systolic:.0f}/{p.diastolic:.0f}" if p.systolic and p.diastolic else "",
            "managed_on": p.risk_managed_on or "", "due": due[0] if due else "",
        })
    return Table("high_risk_pregnancy", "高危孕产妇专案登记", "high-risk pregnancy register", columns, rows)


def to_csv(table: Table, lang: str = "zh") -> bytes:
    """UTF-8 CSV with a byte-order mark (so Excel on a Chinese Windows opens it correctly)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.zh if lang == "zh" else c.en for c in table.columns])
    for row in table.rows:
        writer.writerow([row.get(c.key, "") for c in table.columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


#: characters Excel refuses in a sheet name, and what stands in for them
_SHEET_SWAP = str.maketrans({"\\": "-", ":": "-", "*": "", "?": "", "[": "(", "]": ")"})
_CJK = re.compile(r"[\u4e00-\u9fff]")
_FILE_UNSAFE = re.compile(r'[\\/:*?"<>|\s]+')


def sheet_title(text: str, taken: Iterable[str] = ()) -> str:
    """An Excel sheet name for ``text``: forbidden characters replaced, at most 31 characters, not in ``taken``."""
    title = text.replace("/", "、" if _CJK.search(text) else "-").translate(_SHEET_SWAP).strip("' ")[:31] or "sheet"
    used = {t.casefold() for t in taken}  # Excel compares sheet names without case
    n = 2
    candidate = title
    while candidate.casefold() in used:
        suffix = f"({n})"
        candidate, n = title[:31 - len(suffix)] + suffix, n + 1
    return candidate


def period_text(start: dt.date, end: dt.date, lang: str = "zh") -> str:
    """The period as people read it, saying that both days are included."""
    if lang == "zh":
        return f"{start:%Y-%m-%d} 至 {end:%Y-%m-%d}（含首尾两日）"
    return f"{start:%Y-%m-%d} to {end:%Y-%m-%d} (both days included)"


def institution_label(institution: str, lang: str = "zh") -> str:
    """The institution as a register names it; "" (every site) reads 全部机构 / all institutions."""
    return institution or ("全部机构" if lang == "zh" else "all institutions")


def scope_line(institution: str, start: dt.date, end: dt.date, lang: str = "zh") -> str:
    """The second row of a sheet and the line under a register on its page: which institution, which period."""
    institution = institution_label(institution, lang)
    if lang == "zh":
        return f"机构：{institution}　统计期间：{period_text(start, end, lang)}"
    return f"Institution: {institution}    Period: {period_text(start, end, lang)}"


def file_name(tables: list[Table], institution: str, start: dt.date, end: dt.date, fmt: str,
              lang: str = "zh") -> str:
    """``<register>_<institution>_<start>至<end>.<fmt>`` (``..._<start>_to_<end>`` in English), safe on disk."""
    institution = institution_label(institution, lang)
    if len(tables) == 1:
        title = tables[0].zh if lang == "zh" else tables[0].en
    else:
        title = "妇幼登记表" if lang == "zh" else "MCH registers"
    span = f"{start:%Y-%m-%d}至{end:%Y-%m-%d}" if lang == "zh" else f"{start:%Y-%m-%d}_to_{end:%Y-%m-%d}"
    parts = [_FILE_UNSAFE.sub("_", part).strip("._") for part in (title, institution, span)]
    return "_".join(p for p in parts if p) + f".{fmt}"


def to_xlsx(tables: Iterable[Table], lang: str = "zh", *, institution: str = "", start: dt.date | None = None,
            end: dt.date | None = None) -> bytes:
    """One workbook, one sheet per table named by its title; a bold title row, the institution and
    period row (when given), and a header row.

    Written in openpyxl's ``write_only`` mode (rows streamed, no cell objects kept): a
    10,000-row register stays small in memory. Pure-Python CPU work all the same (seconds):
    the cloud runs it through :func:`cloud.server.offload.run`, never on its event loop.
    """
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    title_font, header_font = Font(bold=True, size=14), Font(bold=True)
    taken: list[str] = []
    for table in tables:
        sheet = book.create_sheet(sheet_title(table.zh if lang == "zh" else table.en, taken))
        taken.append(sheet.title)
        for i, column in enumerate(table.columns, start=1):
            sheet.column_dimensions[get_column_letter(i)].width = max(10, len(column.zh) * 2 + 2)
        title = WriteOnlyCell(sheet, value=table.zh if lang == "zh" else table.en)
        title.font = title_font
        sheet.append([title])
        if start is not None and end is not None:
            sheet.append([scope_line(institution, start, end, lang)])
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
