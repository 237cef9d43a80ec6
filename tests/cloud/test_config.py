"""cloud.toml errors name the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.config import EXAMPLE, load, parse
from cloud.errors import ConfigError

P = Path("/etc/mchub/cloud.toml")


def test_the_example_parses_and_relative_paths_resolve_next_to_the_file() -> None:
    cfg = parse(EXAMPLE, P)
    assert cfg.database.url == "sqlite:////etc/mchub/cloud.db"
    assert cfg.keys_dir == Path("/etc/mchub/keys")
    assert cfg.admin_token_file == Path("/etc/mchub/admin.token")


@pytest.mark.parametrize(("text", "where", "fix"), [
    ("[servr]\nport = 1", "[servr]", "did you mean 'server'"),
    ("[server]\nprot = 1", "[server] prot", "did you mean 'port'"),
    ("[server]\nport = \"8443\"", "[server] port", "port = 8443"),
    ("[server]\nport = 70000", "[server] port", "at most 65535"),
    ("[server]\nworkers = 2\n[database]\nurl = \"sqlite:///c.db\"", "[server] workers", "PostgreSQL"),
    ("[database]\nurl = \"mysql://x\"", "[database] url", "postgresql://"),
    ("[logging]\nlevel = \"LOUD\"", "[logging] level", "DEBUG, INFO"),
    ("[server\nport = 1", "syntax", "TOML"),
])
def test_errors_name_file_key_and_fix(text: str, where: str, fix: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text, P)
    message = str(err.value)
    assert message.startswith(f"{P}: {where}")
    assert "Fix:" in message and fix in message


def test_a_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="mchub cloud init"):
        load(tmp_path / "nope.toml")
