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


async def mch(cloud: Path, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mchub", "cloud", "mch", *args, "--config", str(cloud / "cloud.toml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
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
    assert book.sheetnames == ["breast_followup", "mammography", "breast_ultrasound", "workload", "cervical_results",
                               "high_risk_pregnancy"]
    code, out, _ = await mch(cloud, "register", "cervical-results", "--from", "2025-11-01", "--to", "2025-11-30",
                             "--lang", "en", "--out", str(tmp_path / "c.csv"))
    assert (tmp_path / "c.csv").read_text(encoding="utf-8-sig").startswith("site,screened,HPV positive")
    code, _, err = await mch(cloud, "backfill", "--since", "2025-13-01")
    assert code == 2 and "YYYY-MM-DD" in err
