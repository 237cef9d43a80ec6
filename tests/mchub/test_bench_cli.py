"""``mchub bench`` runs a benchmark in a subprocess and reports its figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mchub.bench import NEEDS, ROOT, available, normalize_all
from mchub.cli import main

#: what the dev extra adds to the edge and cloud extras (importable top-level names)
DEV_ONLY = ("httpx", "httpcore", "pytest", "_pytest", "pytest_asyncio", "pytest_timeout", "hypothesis",
            "playwright", "mypy")

BLOCKER = f"""
import sys
class _NoDevExtra:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {DEV_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: edge+cloud extras only)", name=name)
        return None
sys.meta_path.insert(0, _NoDevExtra())
"""


def without_dev_extra(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run python with the dev extra's modules made unimportable (here and in every child process)."""
    (tmp_path / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tmp_path}:{ROOT}", "HOME": str(tmp_path)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_envelope_benchmark_is_listed() -> None:
    assert "envelope" in available()


@pytest.mark.slow
def test_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "envelope", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    figures = report["results"]["envelope"]
    wire = figures["wire bytes/reading x25519-aes256gcm"]
    assert wire["median"] < 40  # the target for a backlog drain
    assert set(wire) == {"unit", "min", "median", "max", "baseline", "ratio"}
    assert "cores" in report["machine"]


def test_unknown_benchmark_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nosuch"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err


def test_figures_normalize_to_one_shape() -> None:
    raw = {"decode frames/s": 100.0, "decode x baseline": 7.5,
           "store readings/s": {"unit": "readings/s", "min": 1.0, "median": 2.0, "max": 3.0,
                                "baseline": 4.0, "ratio": 0.5}}
    figures = normalize_all(raw)
    assert figures["decode"] == {"unit": "frames/s", "min": None, "median": 100.0, "max": None,
                                 "baseline": None, "ratio": 7.5}
    assert figures["store readings/s"]["ratio"] == 0.5
    assert set(figures) == {"decode", "store readings/s"}


def test_the_blocker_hides_the_dev_extra(tmp_path: Path) -> None:
    result = without_dev_extra(tmp_path, "-c", "import httpx")
    assert result.returncode != 0 and "blocked" in result.stderr


def test_every_benchmark_imports_with_edge_and_cloud_extras_only(tmp_path: Path) -> None:
    """A benchmark either imports without the dev extra or is listed as needing it."""
    plain = [name for name in available() if "httpx" not in NEEDS.get(name, ())]
    code = "import importlib\n" + "".join(f"importlib.import_module('bench.bench_{n}')\n" for n in plain)
    result = without_dev_extra(tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_benchmark_needing_the_dev_extra_is_skipped_with_exit_0(tmp_path: Path) -> None:
    result = without_dev_extra(tmp_path, "-m", "mchub", "bench", "dashboard", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["skipped"]["dashboard"]["needs"][0] == "httpx"
    assert "dev" in report["skipped"]["dashboard"]["note"] and report["results"] == {}
    table = without_dev_extra(tmp_path, "-m", "mchub", "bench", "dashboard")
    assert table.returncode == 0 and "已跳过 skipped" in table.stdout and "dev extra" in table.stdout


@pytest.mark.slow
def test_the_status_page_benchmark_runs_with_the_first_install_only(tmp_path: Path) -> None:
    """``mchub bench hub_status --json`` on the README's first install (no dev extra) measures the deployed
    hub's status page against its raw sqlite3 reads and exits 0."""
    result = without_dev_extra(tmp_path, "-m", "mchub", "bench", "hub_status", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert not report["skipped"]
    figures = report["results"]["hub_status"]
    assert len(figures) == 2
    for f in figures.values():
        assert f["unit"] == "ms" and f["min"] <= f["median"] <= f["max"] and f["baseline"] > 0 and f["ratio"] > 1
