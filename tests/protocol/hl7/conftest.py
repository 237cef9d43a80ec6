"""Fixture messages for the HL7 tests: tests/fixtures/hl7 (third-party, see its SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7"
FILES = sorted(p.name for p in FIXTURES.glob("*.hl7"))


def load(name: str, sep: bytes = b"\r") -> bytes:
    """A fixture with its segments separated by ``sep`` (the files use LF)."""
    return (FIXTURES / name).read_bytes().strip().replace(b"\n", sep) + sep


@pytest.fixture(params=FILES)
def fixture_name(request: pytest.FixtureRequest) -> str:
    """Each fixture file name in turn."""
    return str(request.param)
