"""Registers and statistics: the right cases, counted right, readable in CSV and XLSX."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import msgspec
import pytest
from openpyxl import load_workbook

from cloud.mch.queries import REGISTERS
from cloud.mch.registers import (
    CaseView,
    breast_followup_register,
    cervical_result_statistics,
    file_name,
    mammography_register,
    sheet_title,
    to_csv,
    to_xlsx,
    ultrasound_register,
    workload_statistics,
)
from protocol.mch.records import BreastCase, CervicalCase

START, END = dt.date(2026, 1, 1), dt.date(2026, 12, 31)


def view(case: object, site: str = "城关卫生院") -> CaseView:
    return CaseView(case=case, site_name=site, subject_label="王*")  # type: ignore[arg-type]


def base(n: int, day: str = "2026-03-01") -> dict[str, str]:
    return {"case_id": f"c{n}", "site_id": "s1", "subject_id": f"p{n}", "screened_on": day}


VIEWS = [
    view(BreastCase(**base(1), palpation="normal", ultrasound_birads="1")),
    view(BreastCase(**base(2), palpation="lump", ultrasound_birads="4A")),
    view(BreastCase(**base(3), ultrasound_birads="0", mammography_birads="2")),
    view(BreastCase(**base(4, "2025-06-01"), palpation="lump", ultrasound_birads="5")),  # outside the period
    view(CervicalCase(**base(5), hpv="negative", sampling="liquid_based", tbs="NILM")),
    view(CervicalCase(**base(6), hpv="positive_16", sampling="liquid_based", tbs="HSIL", colposcopy="abnormal",
                      histology="CIN3")),
    view(CervicalCase(**base(7), hpv="positive_other", sampling="pap", tbs="ASC-US", colposcopy="normal"), "东关社区"),
]


def test_breast_registers_select_the_right_cases() -> None:
    assert [r["case_id"] for r in breast_followup_register(VIEWS, START, END).rows] == ["c2", "c3"]
    assert [r["case_id"] for r in mammography_register(VIEWS, START, END).rows] == ["c3"]
    assert [r["case_id"] for r in ultrasound_register(VIEWS, START, END).rows] == ["c1", "c2", "c3"]
    row = breast_followup_register(VIEWS, START, END).rows[0]
    assert row["subject"] == "王*" and row["palpation"] == "肿块" and "病理" in str(row["follow_up"])


def test_statistics_count_per_site() -> None:
    work = {r["site"]: r for r in workload_statistics(VIEWS, START, END).rows}
    assert work["城关卫生院"]["cervical"] == 2 and work["城关卫生院"]["breast"] == 3
    assert work["城关卫生院"]["mammography"] == 1 and work["东关社区"]["colposcopy"] == 1
    results = {r["site"]: r for r in cervical_result_statistics(VIEWS, START, END).rows}
    assert (results["城关卫生院"]["hpv_16_18"], results["城关卫生院"]["cin2_plus"]) == (1, 1)
    assert results["城关卫生院"]["cin2_rate"] == 50_000.0
    assert results["东关社区"]["cyto_abnormal"] == 1


def test_csv_opens_in_excel_and_xlsx_reads_back() -> None:
    table = cervical_result_statistics(VIEWS, START, END)
    data = to_csv(table)
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][0] == "机构" and len(rows) == 3
    english = list(csv.reader(io.StringIO(to_csv(table, "en").decode("utf-8-sig"))))
    assert english[0][0] == "site"
    book = load_workbook(io.BytesIO(to_xlsx([table, workload_statistics(VIEWS, START, END)])))
    assert book.sheetnames == ["宫颈癌筛查结果统计表", "筛查工作量统计表"]
    sheet = book["宫颈癌筛查结果统计表"]
    assert sheet["A1"].value == "宫颈癌筛查结果统计表" and sheet["A2"].value == "机构"


def test_high_risk_pregnancy_register_lists_orange_red_and_purple_with_their_items() -> None:
    from cloud.mch.registers import high_risk_pregnancy_register
    from protocol.mch.records import PrenatalVisit

    def pn(n: int, colour: str, purple: bool = False, items: tuple[str, ...] = (), managed: str | None = None,
           ) -> CaseView:
        return view(PrenatalVisit(**base(n, "2026-05-10"), gestational_weeks=24, systolic=150, diastolic=96,
                                  risk_colour=colour, risk_purple=purple, risk_items=items, risk_managed_on=managed))

    views = [pn(1, "green"), pn(2, "yellow", items=("yellow-1.1",)), pn(3, "orange", items=("orange-1.1",)),
             pn(4, "green", purple=True, items=("purple",)), pn(5, "red", managed="2026-05-11")]
    t = high_risk_pregnancy_register(views, START, END)
    rows = {r["case_id"]: r for r in t.rows}
    assert set(rows) == {"c3", "c4", "c5"}
    assert rows["c3"]["colour"] == "橙色" and rows["c3"]["items"] == "年龄≥40岁" and rows["c3"]["due"] == "2026-05-13"
    assert rows["c4"]["colour"] == "绿色、紫色"
    assert rows["c5"]["managed_on"] == "2026-05-11" and rows["c5"]["due"] == ""  # in case management: task closed
    assert to_csv(t).decode("utf-8-sig").startswith("机构,病例号,姓名,检查日期,孕周,风险分级")
    sheet = load_workbook(io.BytesIO(to_xlsx([t]))).active
    assert sheet is not None and sheet.max_row >= 4

def _on(day: str) -> list[CaseView]:
    """VIEWS, every case screened on ``day``."""
    return [CaseView(msgspec.structs.replace(v.case, screened_on=day), v.site_name, v.subject_label) for v in VIEWS]


@pytest.mark.parametrize("name", sorted(REGISTERS))
def test_every_register_includes_the_end_date_and_not_the_day_after(name: str) -> None:
    build = REGISTERS[name]
    on_end = _on(END.isoformat())
    assert build(on_end, START, END).rows == build(on_end, END, END).rows  # a one-day period is that day
    assert build(on_end, START, END - dt.timedelta(days=1)).rows == []
    assert build(_on((END + dt.timedelta(days=1)).isoformat()), START, END).rows == []


def test_every_register_as_xlsx_has_zh_sheet_names_within_excel_rules_and_names_institution_and_period() -> None:
    tables = [build(VIEWS, START, END) for build in REGISTERS.values()]
    book = load_workbook(io.BytesIO(to_xlsx(tables, institution="城关卫生院 (s1)", start=START, end=END)))
    assert len(book.sheetnames) == len(tables)
    for title, table in zip(book.sheetnames, tables, strict=True):
        assert 0 < len(title) <= 31 and not set(title) & set("[]:*?/\\") and re.search(r"[\u4e00-\u9fff]", title)
        sheet = book[title]
        assert sheet["A1"].value == table.zh
        assert sheet["A2"].value == "机构：城关卫生院 (s1)　统计期间：2026-01-01 至 2026-12-31（含首尾两日）"
        assert [c.value for c in sheet[3]][: len(table.columns)] == [c.zh for c in table.columns]
    english = load_workbook(io.BytesIO(to_xlsx(tables, "en", start=START, end=END)))
    assert all(len(t) <= 31 and not set(t) & set("[]:*?/\\") for t in english.sheetnames)
    assert english.worksheets[0]["A2"].value == ("Institution: all institutions    Period: 2026-01-01 to 2026-12-31 "
                                                 "(both days included)")


def test_sheet_titles_and_file_names_follow_excel_and_file_system_rules() -> None:
    assert sheet_title("乳腺癌筛查异常/可疑病例随访登记表") == "乳腺癌筛查异常、可疑病例随访登记表"
    assert sheet_title("a[b]:c*?d\\e/f") == "a(b)-cd-e-f"
    long = "很长的登记表名称" * 5
    assert sheet_title(long) == long[:31]
    assert sheet_title(long, [long[:31]]) == long[:28] + "(2)"
    assert sheet_title("Workload", ["workload"]) == "Workload(2)"  # Excel ignores case
    table = REGISTERS["workload"](VIEWS, START, END)
    assert file_name([table], "城关卫生院 (s1)", START, END, "xlsx") == \
        "筛查工作量统计表_城关卫生院_(s1)_2026-01-01至2026-12-31.xlsx"
    assert file_name([table, table], "", START, END, "xlsx", "en") == \
        "MCH_registers_all_institutions_2026-01-01_to_2026-12-31.xlsx"
