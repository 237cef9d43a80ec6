"""Fixtures of the cloud tests: an embedded (SQLite) cloud and a PostgreSQL one."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import CloudConfig
from cloud.intake.keystore import CloudKeys
from tests.cloud.support import make_cloud


@pytest.fixture
def sqlite_cloud(tmp_path: Path) -> tuple[CloudConfig, CloudKeys]:
    """A configured cloud on SQLite (the embedded default)."""
    return make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}")


@pytest.fixture
def pg_cloud(tmp_path: Path, pg_dsn: str) -> tuple[CloudConfig, CloudKeys]:
    """A configured cloud on a fresh PostgreSQL database."""
    return make_cloud(tmp_path / "cloud", pg_dsn)


@pytest.fixture(params=["sqlite", "postgres"])
def any_cloud(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[CloudConfig, CloudKeys]:
    """The same test on the embedded default and on PostgreSQL (where ingest is one function call)."""
    fast = "[http]\nrefusal_window_s = 0.2\n"  # refusal tally rows within a second
    if request.param == "sqlite":
        return make_cloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}", fast)
    return make_cloud(tmp_path / "cloud", str(request.getfixturevalue("pg_dsn")), fast)
