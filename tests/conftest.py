"""Session fixtures: throwaway PostgreSQL and Mosquitto, pseudo-terminals.

A test that asks for ``postgres`` or ``mosquitto`` fails (it is never skipped) when the
server cannot be started: the suite must prove the real thing works.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from tests.support.pty import PtyPair
from tests.support.services import MosquittoServer, PostgresServer

_db_counter = itertools.count(1)

# CI: a bounded number of examples and no per-example deadline (the machine may be busy).
# `HYPOTHESIS_PROFILE=long pytest ...` digs deeper before a release.
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole session."""
    server = PostgresServer().start()
    yield server
    server.destroy()


@pytest.fixture
def pg_dsn(postgres: PostgresServer, request: pytest.FixtureRequest) -> str:
    """A fresh, empty database for one test; returns its DSN."""
    name = f"t{next(_db_counter)}_{request.node.name[:40]}".lower()
    name = "".join(c if c.isalnum() else "_" for c in name)
    return postgres.create_database(name)


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoServer]:
    """One Mosquitto broker for the whole session."""
    server = MosquittoServer().start()
    yield server
    server.destroy()


@pytest.fixture
def pty_pair() -> Iterator[PtyPair]:
    """A raw pseudo-terminal pair, closed after the test."""
    pair = PtyPair.open()
    yield pair
    pair.close()
