"""Every listing command says so when there is nothing to list ("没有… / no …"), instead of printing nothing.

The listing commands are found by walking the parser (a subcommand named ``list``, or a
``list`` action); each one is exercised on an empty store here or, for ``mchub provision``,
in ``tests/provisioning/test_cli.py::test_empty_lists_say_so`` (it needs the admin API peer).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mchub.cli import build_parser
from tests.test_cli import _walk

ROOT = Path(__file__).resolve().parent.parent
EXERCISED = {
    "mchub cloud hub list",
    "mchub cloud outbox",
    "mchub cloud user list",
    "mchub cloud dicom-sender list",
    "mchub edge dead-letters",
}
ELSEWHERE = {"mchub provision site list", "mchub provision hub list", "mchub provision device list"}


def _listings() -> set[str]:
    found = set()
    for path, child, _ in _walk(build_parser(), ("mchub",)):
        actions = [
            a
            for a in child._actions
            if isinstance(a.choices, (list, tuple))
            and "list" in a.choices
            and not isinstance(a, argparse._SubParsersAction)
        ]
        if path.endswith(" list") or actions:
            found.add(path)
    return found


def test_every_listing_command_is_exercised_empty() -> None:
    assert _listings() == EXERCISED | ELSEWHERE


def mchub(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "MCHUB_ADMIN_TOKEN"}
    return subprocess.run(
        [sys.executable, "-m", "mchub", *argv],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("argv", "zh", "en"),
    [
        (("cloud", "hub", "list"), "还没有网关", "no hubs yet"),
        (("cloud", "outbox", "list"), "出站队列为空", "nothing queued"),
        (("cloud", "user", "list"), "还没有账户", "no accounts yet"),
        (("cloud", "dicom-sender", "list"), "没有 DICOM 发送方", "no DICOM senders yet"),
        # listings not named list
        (("cloud", "mch", "cases"), "没有符合条件的个案", "0 case(s) match"),
        (("cloud", "mch", "queue"), "没有 / none", "none"),
        (("cloud", "mch", "followups"), "没有未完成的随访任务", "0 open task(s)"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_an_empty_cloud_list_says_so(argv: tuple[str, ...], zh: str, en: str, tmp_path: Path) -> None:
    assert mchub(tmp_path, "cloud", "init", "--config", "cloud.toml").returncode == 0
    done = mchub(tmp_path, *argv, "--config", "cloud.toml")
    assert done.returncode == 0, done.stderr
    assert zh in done.stdout and en in done.stdout, done.stdout


def test_an_empty_refused_records_list_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mchub.cli import main
    from tests.edge.conftest import make_hub_dir
    from tests.edge.hubkit import started
    from tests.support.refcloud import RefCloud

    cloud = RefCloud(tmp_path / "cloud.db")  # never started: the hub only needs its keys
    cfg = make_hub_dir(tmp_path / "hub", cloud, stations='[[stations]]\nid = "room-1"\n')

    async def run_once() -> None:
        hub = await started(cfg)
        await hub.stop()

    asyncio.run(run_once())
    assert main(["edge", "dead-letters", "list", "--config", str(cfg)]) == 0
    assert "没有被拒收的记录 / no refused records" in capsys.readouterr().out
