"""``mchub bench`` runs a benchmark in a subprocess and reports its figures."""

from __future__ import annotations

import json

import pytest

from mchub.bench import available
from mchub.cli import main


def test_envelope_benchmark_is_listed() -> None:
    assert "envelope" in available()


@pytest.mark.slow
def test_json_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "envelope", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    figures = report["results"]["envelope"]
    assert figures["wire bytes/reading x25519-aes256gcm"] < 40  # the target for a backlog drain
    assert "cores" in report["machine"]


def test_unknown_benchmark_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "nosuch"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
