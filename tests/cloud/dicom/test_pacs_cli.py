"""The PACS simulator's command line against the live STOW-RS service and C-STORE SCP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firmware_sim.pacs_cli import main
from tests.cloud.dicom.conftest import SCU_AET, Recorder


async def test_make_then_stow_then_cstore(
    tmp_path: Path, stow_url: str, scp_port: int, recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "study"
    assert main(["make", str(out), "--charset", "ISO_IR 192", "--birads", "4C"]) == 0
    files = sorted(str(p) for p in out.glob("*.dcm"))
    assert len(files) == 3
    assert await asyncio.to_thread(main, ["stow", stow_url, *files]) == 0
    assert "HTTP 200: 3 stored, 0 failed" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["cstore", "127.0.0.1", str(scp_port), *files, "--calling-aet", SCU_AET]) == 0
    assert {i.birads for i, _ in recorder.seen} == {None, "4C"} and len(recorder.seen) == 6
    assert await asyncio.to_thread(main, ["echo", "127.0.0.1", str(scp_port), "--calling-aet", "NOBODY"]) == 2
    assert "rejected" in capsys.readouterr().err


def test_help_is_bilingual(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "模拟医院 PACS" in text and "mchub sim pacs stow" in text
