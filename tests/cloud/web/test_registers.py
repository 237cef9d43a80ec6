"""MCH register pages over real cases: period and site, masked names, CSV/XLSX, audited, watermarked."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from urllib.parse import quote

from openpyxl import load_workbook
from starlette.requests import Request

from cloud.mch import assembler
from cloud.mch.profiles import reference_profile
from cloud.mch.sources import CHINA
from cloud.web.registers import _period
from tests.cloud.mch.conftest import add_result, add_subject, add_visit
from tests.cloud.support import make_cloud
from tests.cloud.web.support import WEB, running, sign_in

T0 = 1_762_000_000_000  # 2025-11-01 China time
DAY = 86_400_000
PERIOD = {"start": "2025-11-01", "end": "2025-11-30"}


def test_the_default_period_ends_today_in_china() -> None:
    """Cases are dated in China time; at 06:00 in Beijing the server's UTC date is still yesterday."""
    start, end = _period(Request({"type": "http", "query_string": b"", "headers": []}))
    today = dt.datetime.now(CHINA).date()
    assert (start, end) == (today.replace(day=1), today)


async def test_registers_on_screen_and_as_files(tmp_path: Path) -> None:
    cfg, _ = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    async with running(cfg) as cloud:
        db = cloud.state.db
        a, b = await add_subject(db), await add_subject(db)
        await add_visit(db, a, "s-a", T0, [], site_id="S1")
        await add_visit(db, b, "s-b", T0, [], site_id="S2", hub_id="H2")
        await add_result(db, a, "hl7", "hpv", "30167-1", "阴性", T0)
        await add_result(db, a, "dicom", "birads", "BIRADS-US", "4A", T0 + DAY)
        await add_result(db, b, "dicom", "birads", "BIRADS-MG", "2", T0 + DAY)
        await assembler.sweep(db, assembler.Context(reference_profile(), today=lambda: dt.date(2026, 11, 20)))
        secret = await cloud.user("ops", "integration")
        async with cloud.client() as c:
            await sign_in(c, "ops", secret)
            r = await c.get("/ui/registers", params={"name": "workload", **PERIOD})
            assert r.status_code == 200 and 'class="watermark"' in r.text
            assert "site S1" in r.text and "site S2" in r.text and "筛查工作量统计表" in r.text
            one = await c.get("/ui/registers", params={"name": "mammography", "site": "S2", **PERIOD, "lang": "en"})
            assert "Mammography register" in one.text and one.text.count("<tr>") == 2  # header + one case
            csv = await c.get("/ui/registers/download", params={"name": "workload", "fmt": "csv", **PERIOD})
            assert csv.headers["content-type"].startswith("text/csv") and csv.content.startswith(b"\xef\xbb\xbf")
            assert 'filename="workload_all_20251101-20251130.csv"' in csv.headers["content-disposition"]
            assert (
                "filename*=UTF-8''Screening_workload_statistics_all_institutions_2025-11-01_to_2025-11-30.csv"
                in csv.headers["content-disposition"]
            )  # this client switched to English above
            xlsx = await c.get(
                "/ui/registers/download",
                params={"name": "breast-followup", "fmt": "xlsx", "site": 'S1"\r\nX: y', **PERIOD, "lang": "zh-CN"},
            )  # the page before switched to English
            assert "\r" not in xlsx.headers["content-disposition"]  # the site cannot inject a header
            sheet = load_workbook(io.BytesIO(xlsx.content)).active
            assert sheet is not None and sheet["A1"].value == "乳腺癌筛查异常/可疑病例随访登记表"
            assert (
                "filename*=UTF-8''" + quote("乳腺癌筛查异常_可疑病例随访登记表_S1_X_y_2025-11-01至2025-11-30.xlsx")
                in xlsx.headers["content-disposition"]
            )
            # the end date is included: a one-day period on the visit's day shows it, on the page and in the file
            day = {"start": "2025-11-01", "end": "2025-11-01", "lang": "zh-CN"}
            shown = (await c.get("/ui/registers", params={"name": "workload", **day})).text
            assert "site S1" in shown and "统计期间：2025-11-01 至 2025-11-01（含首尾两日）" in shown
            one_day = await c.get("/ui/registers/download", params={"name": "workload", "fmt": "xlsx", **day})
            book = load_workbook(io.BytesIO(one_day.content))
            assert book.sheetnames == ["筛查工作量统计表"]
            assert book.active is not None and book.active["A4"].value == "site S1"
            assert book.active["A2"].value == "机构：全部机构　统计期间：2025-11-01 至 2025-11-01（含首尾两日）"
            unknown = await c.get("/ui/registers", params={"name": "births", **PERIOD})
            assert unknown.status_code == 200  # falls back to the first register
        actions = [
            r["action"]
            for r in await cloud.sql(
                "SELECT action FROM audit_log WHERE actor = 'web:ops' AND action LIKE $1 ORDER BY id", "view.register%"
            )
        ]
        assert actions == [
            "view.register",
            "view.register",
            "view.register.download",
            "view.register.download",
            "view.register",
            "view.register.download",
            "view.register",
        ]


async def test_high_risk_pregnancy_register_on_screen_and_as_files(tmp_path: Path) -> None:
    """A 45-year-old at 24 weeks is orange (国卫办妇幼发〔2017〕35号 附件2, 橙色 1.1 年龄≥40岁): the
    high-risk register lists her with the row that graded her and the follow-up due date, on the page
    and in the CSV and XLSX files; a green woman is not listed."""
    cfg, _ = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    vitals = [
        {"code": "29463-7", "value": 62.0, "unit": "kg"},
        {"code": "8302-2", "value": 160.0, "unit": "cm"},
        {"code": "8480-6", "value": 118, "unit": "mm[Hg]"},
        {"code": "8462-4", "value": 74, "unit": "mm[Hg]"},
    ]
    async with running(cfg) as cloud:
        db = cloud.state.db
        older, younger = await add_subject(db, birth_date="1980-05-01"), await add_subject(db, birth_date="1998-05-01")
        await add_visit(db, older, "s-old", T0, [vitals], pregnant_weeks=24)
        await add_visit(db, younger, "s-young", T0, [vitals], pregnant_weeks=24)
        await assembler.sweep(db, assembler.Context(reference_profile(), today=lambda: dt.date(2026, 11, 20)))
        secret = await cloud.user("ops", "integration")
        async with cloud.client() as c:
            await sign_in(c, "ops", secret)
            page = await c.get("/ui/registers", params={"name": "high-risk-pregnancy", **PERIOD, "lang": "zh-CN"})
            assert page.status_code == 200 and "高危孕产妇" in page.text
            assert "橙色" in page.text and "年龄≥40岁" in page.text and page.text.count("<tr>") == 2  # header + her
            csv = await c.get("/ui/registers/download", params={"name": "high-risk-pregnancy", "fmt": "csv", **PERIOD})
            text = csv.content.decode("utf-8-sig")
            assert text.startswith("机构,病例号,姓名,检查日期,孕周,风险分级") and len(text.strip().splitlines()) == 2
            assert "橙色" in text and "年龄≥40岁" in text and "2025-11-04" in text  # due three days after the visit
            xlsx = await c.get(
                "/ui/registers/download", params={"name": "high-risk-pregnancy", "fmt": "xlsx", **PERIOD}
            )
            sheet = load_workbook(io.BytesIO(xlsx.content)).active
            assert sheet is not None and sheet.max_row == 4  # title, period, header, her
            assert any(cell.value == "橙色" for cell in sheet[4])


async def test_a_sites_file_names_it_and_its_period_both_days_included(tmp_path: Path) -> None:
    """The XLSX of one institution: zh-CN sheet name, its name and the period on top, the same in the file
    name; a case screened on the last day is in, one the day after is not."""
    from tests.cloud.support import ensure_site

    cfg, _ = make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", extra_toml=WEB)
    async with running(cfg) as cloud:
        db = cloud.state.db
        await ensure_site(db, "S1", "城关镇卫生院")
        on_end, after_end = await add_subject(db), await add_subject(db)
        await add_visit(db, on_end, "s-end", T0 + 9 * DAY, [], site_id="S1")  # 2025-11-10
        await add_visit(db, after_end, "s-after", T0 + 10 * DAY, [], site_id="S1")  # 2025-11-11
        for who, at in ((on_end, T0 + 9 * DAY), (after_end, T0 + 10 * DAY)):
            await add_result(db, who, "hl7", "hpv", "30167-1", "阴性", at)
        await assembler.sweep(db, assembler.Context(reference_profile(), today=lambda: dt.date(2026, 11, 20)))
        secret = await cloud.user("ops", "integration")
        period = {"name": "workload", "site": "S1", "start": "2025-11-01", "end": "2025-11-10", "lang": "zh-CN"}
        async with cloud.client() as c:
            await sign_in(c, "ops", secret)
            r = await c.get("/ui/registers/download", params={**period, "fmt": "xlsx"})
            book = load_workbook(io.BytesIO(r.content))
            assert book.sheetnames == ["筛查工作量统计表"]
            sheet = book.active
            assert sheet is not None and sheet["A1"].value == "筛查工作量统计表"
            assert sheet["A2"].value == "机构：城关镇卫生院 (S1)　统计期间：2025-11-01 至 2025-11-10（含首尾两日）"
            rows = [[cell.value for cell in row] for row in sheet.iter_rows(min_row=3)]
            assert rows[0][:3] == ["机构", "宫颈癌筛查人数", "HPV检测"]  # zh-CN headers
            assert rows[1:] == [["城关镇卫生院", 1, 1, 0, 0, 0, 0, 0, 0, 0]]  # the last day's case, not the next day's
            assert ("filename*=UTF-8''" + quote("筛查工作量统计表_城关镇卫生院_(S1)_2025-11-01至2025-11-10.xlsx")
                    in r.headers["content-disposition"])
            assert 'filename="workload_S1_20251101-20251110.xlsx"' in r.headers["content-disposition"]
