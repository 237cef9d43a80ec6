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
    # one declaration per key (msgspec Structs, issue 19): every section answers in the same words
    ("server = 3", "server", "[server] on its own line"),
    ("[provisioning]\nhub_cert_days = 400", "[provisioning] hub_cert_days", "above 0 and at most 397"),
    ("[audit]\nseal_interval_s = 0", "[audit] seal_interval_s", "above 0 and at most 3600"),
    ("[keys]\ndir = 3", "[keys] dir", 'dir = "keys"'),
    ("[web]\nsecure_cookie = 1", "[web] secure_cookie", "secure_cookie = true"),
    ("[outbox]\nbase_delay_s = 10.0\nmax_delay_s = 5.0", "[outbox] max_delay_s", "at least as long"),
    ('[provisioning]\nmqtt_reload_command = ["systemctl", 1]', "[provisioning] mqtt_reload_command",
     'mqtt_reload_command = ["systemctl", "reload", "mosquitto"]'),
    ("[mqtt]\nenable = true", "[mqtt] enable", "did you mean 'enabled'"),
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


@pytest.mark.parametrize(("text", "where", "fix"), [
    ('[http]\nforwarded_allow_ips = "10.0.0.300"', "[http] forwarded_allow_ips", "list the proxy addresses"),
    ("[http]\nmax_connections_per_ip = 0", "[http] max_connections_per_ip", "above 0"),
    ('[http]\nheader_timeout_s = "10"', "[http] header_timeout_s", "header_timeout_s = 10.0"),
])
def test_http_errors_name_file_key_and_fix(text: str, where: str, fix: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(text, P)
    assert str(P) in str(err.value) and where in str(err.value) and fix in str(err.value)


def test_http_defaults_and_the_metrics_token_file(tmp_path: Path) -> None:
    cfg = parse(EXAMPLE, P)
    assert (cfg.http.forwarded_allow_ips, cfg.http.metrics_token_file, cfg.metrics_token()) == ("127.0.0.1", None, None)
    (tmp_path / "metrics.token").write_text("t0ken\n")
    cfg = parse('[http]\nforwarded_allow_ips = "10.0.0.5, 10.1.0.0/16"\nmetrics_token_file = "metrics.token"\n',
                tmp_path / "cloud.toml")
    assert cfg.metrics_token() == "t0ken"
    with pytest.raises(ConfigError, match=r"\[http\] metrics_token_file"):
        parse('[http]\nmetrics_token_file = "absent.token"\n', tmp_path / "cloud.toml").metrics_token()


def test_paths_resolve_next_to_the_file_and_an_empty_one_is_unset(tmp_path: Path) -> None:
    cfg = parse('[admin]\ntoken_file = ""\n[provisioning]\nca_dir = "ca"\npassphrase_file = "/etc/ca.pass"\n',
                tmp_path / "cloud.toml")
    assert cfg.admin_token_file is None and cfg.admin_token() is None
    assert (cfg.provisioning.ca_dir, cfg.provisioning.passphrase_file) == (tmp_path / "ca", Path("/etc/ca.pass"))
