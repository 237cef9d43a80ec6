"""`mchub cloud mch ...` as an operator runs it, on the embedded (SQLite) cloud."""

from __future__ import annotations

import asyncio
import io
import sys
from pathlib import Path

from openpyxl import load_workbook

from cloud.db.engine import Database
from cloud.db.migrations import migrate
from firmware_sim.mch_platform import Platform
from tests.cloud.mch.conftest import add_result, add_subject, add_visit
from tests.cloud.support import make_cloud
from tests.support.asgi import serve

T0 = 1_762_000_000_000  # 2025-11-01 China time


async def mch(cloud: Path, *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mchub", "cloud", "mch", *args, "--config", str(cloud / "cloud.toml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=cwd,
        env={"PYTHONPATH": str(Path.cwd()), "PATH": "/usr/bin:/bin", "USER": "tester"})
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_backfill_inspect_correct_upload_and_registers(tmp_path: Path) -> None:
    cloud = tmp_path / "cloud"
    platform = Platform()
    async with serve(platform.app) as url:
        make_cloud(cloud, f"sqlite:///{cloud / 'cloud.db'}", f'[mch]\nenabled = true\nplatform_url = "{url}"\n'
                   'app_key = "mchub"\n')
        (cloud / "mch.secret").write_text("platform-secret\n")
        db = await Database.connect(f"sqlite:///{cloud / 'cloud.db'}")
        await migrate(db)
        sid = await add_subject(db)
        await add_visit(db, sid, "s1", T0, [], site_id="S1")
        await add_result(db, sid, "hl7", "cytology", "47527-7", "LSIL", T0, {"loinc": "47527-7"})
        await add_result(db, sid, "dicom", "birads", "BIRADS-US", "2", T0)
        await db.close()
        case = f"CX-{sid}-20251101"

        code, out, err = await mch(cloud, "backfill", "--since", "2025-01-01")
        assert code == 0 and "1/1 subjects" in err and "2 new case version(s): 1 queued for upload, 1 held" in out
        code, out, _ = await mch(cloud, "cases", "--state", "invalid")
        assert case in out and "1 case(s)" in out
        code, out, _ = await mch(cloud, "show", case)
        assert "colposcopy: 细胞学异常者须有阴道镜检查决定" in out and "follow-up colposcopy (open)" in out
        code, out, err = await mch(cloud, "correct", case, "colposcopy=not_done", "--reason", "declined")
        assert code == 0 and f"{case}: queued, version 2, state ready" in out, err
        code, _, err = await mch(cloud, "correct", case, "colour=red", "--reason", "x")
        assert code == 2 and "has no field colour" in err
        code, out, _ = await mch(cloud, "upload")
        assert f"mch.upload/{case}/2: delivered" in out and "2 upload(s) tried" in out
        code, out, _ = await mch(cloud, "queue")
        assert "accepted 2" in out and "dead" not in out
        code, out, _ = await mch(cloud, "followups")
        assert "0 open task(s)" in out  # the colposcopy decision closed the follow-up task
    assert sorted(v for _, _, v in platform.state.log) == [1, 2]

    code, out, _ = await mch(cloud, "register", "all", "--from", "2025-11-01", "--to", "2025-11-30",
                             "--out", str(tmp_path / "r.xlsx"))
    assert code == 0 and "筛查工作量统计表 (1 row(s))" in out
    book = load_workbook(io.BytesIO((tmp_path / "r.xlsx").read_bytes()))
    assert book.sheetnames == ["乳腺癌筛查异常、可疑病例随访登记表", "乳腺X线检查登记表", "乳腺超声检查登记表",
                               "筛查工作量统计表", "宫颈癌筛查结果统计表", "高危孕产妇专案登记"]
    assert book.worksheets[0]["A2"].value == "机构：全部机构　统计期间：2025-11-01 至 2025-11-30（含首尾两日）"
    code, out, _ = await mch(cloud, "register", "cervical-results", "--from", "2025-11-01", "--to", "2025-11-30",
                             "--lang", "en", "--out", str(tmp_path / "c.csv"))
    assert (tmp_path / "c.csv").read_text(encoding="utf-8-sig").startswith("site,screened,HPV positive")
    # one day, --from = --to: the day is included; without --out the file names register, institution, period
    code, out, err = await mch(cloud, "register", "workload", "--from", "2025-11-01", "--to", "2025-11-01",
                               "--site", "S1", "--format", "xlsx", cwd=tmp_path)
    assert code == 0, err
    assert "(1 row(s))" in out and "2025-11-01 至 2025-11-01（含首尾两日）" in out
    named = tmp_path / "筛查工作量统计表_site_S1_(S1)_2025-11-01至2025-11-01.xlsx"  # site name, then id
    sheet = load_workbook(io.BytesIO(named.read_bytes())).active
    assert sheet is not None
    assert sheet["A2"].value == "机构：site S1 (S1)　统计期间：2025-11-01 至 2025-11-01（含首尾两日）"
    assert sheet["A3"].value == "机构" and sheet["A4"].value is not None  # header row, then the one site
    code, _, err = await mch(cloud, "register", "workload", "--from", "2025-11-30", "--to", "2025-11-01",
                             "--out", str(tmp_path / "x.csv"))
    assert code == 2 and "--to 2025-11-01 is before --from 2025-11-30" in err
    code, _, err = await mch(cloud, "register", "births", "--from", "2025-11-01", "--to", "2025-11-30",
                             "--out", str(tmp_path / "x.csv"))
    assert code == 2 and "no register 'births'; choose one of breast-followup" in err
    code, _, err = await mch(cloud, "backfill", "--since", "2025-13-01")
    assert code == 2 and "YYYY-MM-DD" in err
