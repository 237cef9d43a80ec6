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
    doc = json.loads(done.stdout)
    measured = {key.removesuffix(" frames/s") for key in doc["results"] if key.endswith(" frames/s")}
    assert measured | set(doc["no_examples"]) == set(codecs())
    assert {n for n in codecs() if n.startswith("ble-")} <= measured
