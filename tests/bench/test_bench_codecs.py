"""The codec benchmark runs and covers every registered codec (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from drivers.registry import codecs

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "bench_codecs.py"


def test_bench_reports_every_codec() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--seconds", "0.01", "--json"],
                          capture_output=True, text=True, check=True)
    rows = json.loads(done.stdout)["results"]
    assert [r["codec"] for r in rows] == list(codecs())
    assert all(r["frames_per_s"] for r in rows if r["codec"].startswith("ble-"))
