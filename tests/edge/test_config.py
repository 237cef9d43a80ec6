"""hub.toml validation: errors name the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import config
from edge.errors import ConfigError

KINDS = {"ble-bp": object, "synthetic": object}


def load(tmp_path: Path, text: str) -> config.HubConfig:
    p = tmp_path / "hub.toml"
    p.write_text(text, encoding="utf-8")
    return config.load(p, driver_kinds=lambda _plugins: KINDS)


def test_full_example_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    cfg = load(tmp_path, """
[hub]
identity_dir = "id"
language = "en"
[sync]
url = "https://cloud.example.cn/"
retention_days = 7
[mqtt]
host = "mqtt.example.cn"
[web]
port = 8081
[thresholds]
bp_guideline = "2022"
[[stations]]
id = "room-1"
session_window_s = 120
[[stations.devices]]
id = "bp-1"
driver = "ble-bp"
transport = "ble"
address = "AA:BB:CC:DD:EE:FF"
dialect = "omron"
pairing_pin = "000000"
""")
    assert cfg.identity_dir == tmp_path / "id" and cfg.db_path == tmp_path / "data" / "hub.db"
    assert cfg.sync.url == "https://cloud.example.cn" and cfg.sync.retention_days == 7
    assert cfg.mqtt is not None and cfg.mqtt.port == 1883 and cfg.web_port == 8081
    [dev] = cfg.devices()
    assert (dev.station_id, dev.address, dev.dialect) == ("room-1", "AA:BB:CC:DD:EE:FF", "omron")
    assert dev.options["pairing_pin"] == "000000"  # extra keys reach the driver


@pytest.mark.parametrize(("text", "key", "fix"), [
    ('[[stations]]\nid = "a"\n[[stations.devices]]\nid = "x"\ndriver = "nope"\n',
     "stations[0].devices[0].driver", "use one of: ble-bp, synthetic"),
    ('[web]\nport = "80"\n', "web.port", "write it like `port = 0`"),
    ('[web]\nport = 70000\n', "web.port", "between 0 and 65535"),
    ('[sync]\nurll = "x"\n', "sync.urll", "check the spelling"),
    ('[sync]\nurl = "cloud.example.cn"\n', "sync.url", "https://"),
    ('[hub]\nlanguage = "fr"\n', "hub.language", "zh-CN, en"),
    ('[[stations]]\nname = "no id"\n', "stations[0].id", "add `id = "),
    ('[[stations]]\nid = "a"\n[[stations]]\nid = "a"\n', "stations[1].id", "its own id"),
    ("[hub\n", "(syntax)", "TOML syntax"),
    ('[[web.users]]\nname = "nurse"\nsecret_hash = "246810"\n', "web.users[0].secret_hash", "hash-password"),
    ('[web]\nsecure_cookie = "no"\n', "web.secure_cookie", "secure_cookie = false"),
    ('[web]\nmax_connections_per_ip = 0\n', "web.max_connections_per_ip", "between 1 and 10000"),
    ('[web]\nheader_timeout_s = 0.1\n', "web.header_timeout_s", "between 1 and 300"),
    ('[web]\nforwarded_allow_ips = 127\n', "web.forwarded_allow_ips", "forwarded_allow_ips = \"127.0.0.1\""),
    # one declaration per key (msgspec Structs, issue 19): every section answers in the same words
    ('[storage]\nmin_free_mb = -1\n', "storage.min_free_mb", "between 0 and 1000000"),
    ('[storage]\naudit_retention_days = 30\n', "storage.audit_retention_days", "183 or more"),
    ('[mqtt]\nport = 1884\n', "mqtt.host", 'add `host = "mqtt.example.cn"`'),
    ('[[web.users]]\nname = "n"\nrole = "admin"\n', "web.users[0].role", "use one of: staff"),
    ('stations = 3\n', "stations", 'write it like `stations = [{id = "room-1"}]`'),
    ('[hub]\nplugins = ["a", 3]\n', "hub.plugins[1]", 'plugins = ["my_site.drivers"]'),
    ('[thresholds]\nbp_guideline = 2018\n', "thresholds.bp_guideline", "write it like"),
    ('[[stations]]\nid = "a"\nsession_window_s = 1\n', "stations[0].session_window_s", "between 5 and 86400"),
    ('[[stations]]\nid = "a"\n[[stations.devices]]\nid = "x"\ndriver = "ble-bp"\nport = "/dev/ttyUSB0"\n',
     "stations[0].devices[0].port", 'address = "/dev/ttyUSB0"'),
    ('[sync]\nlinger_ms = 1.5\n', "sync.linger_ms", "write it like `linger_ms = 0`"),
    ('hub = 1\n', "hub", "write it like `hub = {}`"),
])
def test_errors_name_file_key_and_fix(tmp_path: Path, text: str, key: str, fix: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(tmp_path, text)
    assert err.value.key == key and fix in err.value.fix and str(tmp_path / "hub.toml") in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(tmp_path / "absent.toml")
