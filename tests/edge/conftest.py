"""Fixtures for hub tests: a reference cloud, a hub directory (identity + hub.toml), a test driver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import identity
from tests.support.refcloud import RefCloud


@pytest.fixture
def refcloud(tmp_path: Path) -> Iterator[RefCloud]:
    """A running reference receiver (docs/protocol.md) on a free loopback port."""
    cloud = RefCloud(tmp_path / "cloud.db").start()
    yield cloud
    cloud.stop()


def make_hub_dir(base: Path, cloud: RefCloud, hub_id: str = "clinic-1", extra: str = "",
                 stations: str = "", sync: str = "") -> Path:
    """Identity (registered with ``cloud``) and a hub.toml in ``base``; returns the config path."""
    base.mkdir(parents=True, exist_ok=True)
    ident = identity.init(base / "identity", hub_id, cloud.write_key_file(base / "cloud.json"))
    cloud.hubs[hub_id] = ident.signer.public_key()
    cfg = base / "hub.toml"
    cfg.write_text(
        f'[hub]\nidentity_dir = "identity"\ndata_dir = "data"\nlanguage = "en"\n{extra}\n'
        f'[sync]\nurl = "{cloud.url}"\nlinger_ms = 20\nmax_backoff_s = 0.2\n{sync}\n'
        f'[web]\nbind = "127.0.0.1"\nport = 0\n'
        f'[storage]\nmin_free_mb = 0\n{stations}\n',
        encoding="utf-8",
    )
    return cfg


@pytest.fixture
def hub_dir(tmp_path: Path, refcloud: RefCloud) -> Path:
    """hub.toml of a hub with one station and no devices, registered with ``refcloud``."""
    return make_hub_dir(tmp_path / "hub", refcloud, stations='[[stations]]\nid = "room-1"\n')
