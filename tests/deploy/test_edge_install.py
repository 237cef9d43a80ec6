"""The Raspberry Pi installer builds a hub-only environment that runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_install_into_a_test_root_gives_a_working_hub_only_environment(tmp_path: Path) -> None:
    env = {**os.environ, "PREFIX": str(tmp_path), "NO_SYSTEMD": "1"}
    result = subprocess.run(["bash", str(ROOT / "deploy/edge/install.sh")], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    venv = tmp_path / "opt/mchub/venv"
    for args in (["--version"], ["--help"], ["edge", "--help"]):
        run = subprocess.run([str(venv / "bin/mchub"), *args], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
    site = next((venv / "lib").glob("python3*/site-packages"))
    installed = {p.name.split("-")[0].lower() for p in site.iterdir()}
    assert {"bleak", "serial", "aiomqtt"} <= installed
    assert not {"asyncpg", "aiosqlite", "pydicom", "pytest"} & installed  # a hub carries no cloud or dev code
    # compiled at install: the service cannot write __pycache__, and compiling at every start costs memory
    assert list((site / "edge" / "__pycache__").glob("daemon.*.pyc")) and list(site.glob("aiohttp/__pycache__/*.pyc"))
    assert list((site / "edge" / "__pycache__").glob("daemon.*.opt-2.pyc"))  # the service runs with -OO
    assert list(site.glob("starlette/__pycache__/*.opt-2.pyc"))
    config = tmp_path / "etc/mchub/hub.toml"
    assert config.exists()
    before = config.read_text()
    config.write_text(before + "\n# edited by the clinic\n")
    assert subprocess.run(["bash", str(ROOT / "deploy/edge/install.sh")], env=env, capture_output=True,
                          timeout=600).returncode == 0
    assert config.read_text().endswith("# edited by the clinic\n")  # an upgrade never overwrites it
