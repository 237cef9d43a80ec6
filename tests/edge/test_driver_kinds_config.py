"""Every driver kind a hub can run configures from a minimal hub.toml and passes ``check-config``.

Issue 17 finding 2: ``modbus-rtu`` could not be configured at all (hub.toml's ``port`` had
to be an integer, the driver wanted a serial path there). Each kind of
:func:`edge.plugins.known_drivers` needs an entry here, so a new kind without a config
test fails :func:`test_every_kind_has_a_minimal_table`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.plugins import known_drivers
from mchub.cli import main
from tests.support.refcloud import RefCloud

_REGISTERS = '''reading_kind = "height_weight"
ready = { address = 0, ack = "echo", ack_address = 2 }
sequence = { address = 1, type = "u16" }
registers = [
  { address = 3, type = "u16", scale = 0.1, unit = "cm", code = "8302-2" },
  { address = 4, type = "f32", unit = "kg", code = "29463-7" },
]
'''

#: the smallest device table of each kind, as docs/edge.md and docs/fieldbus.md show it
MINIMAL: dict[str, str] = {
    "ble-bp": 'address = "AA:BB:CC:DD:EE:01"\n',
    "ble-weight": 'address = "AA:BB:CC:DD:EE:02"\n',
    "ble-thermometer": 'address = "AA:BB:CC:DD:EE:03"\n',
    "ble-body-composition": 'address = "AA:BB:CC:DD:EE:04"\n',
    "idcard": 'address = "/dev/ttyUSB1"\n',
    "serial-bp": 'address = "/dev/ttyUSB2"\n',
    "serial-station": 'address = "/dev/ttyUSB3"\ndialect = "tanita-csv"\n',
    "modbus-tcp": 'host = "192.168.1.50"\nport = 502\n' + _REGISTERS,
    "modbus-rtu": 'address = "/dev/ttyUSB4"\nbaudrate = 19200\nparity = "E"\nunit_id = 2\n' + _REGISTERS,
    "mqtt": "",
}


def test_every_kind_has_a_minimal_table() -> None:
    assert set(MINIMAL) == set(known_drivers())


@pytest.fixture
def identity_dir(tmp_path: Path, refcloud: RefCloud) -> Path:
    (tmp_path / "hub.toml").write_text('[hub]\nidentity_dir = "id"\n', encoding="utf-8")
    key = refcloud.write_key_file(tmp_path / "cloud.json")
    assert main(["edge", "init", "--hub-id", "clinic-9", "--cloud-key", str(key),
                 "--config", str(tmp_path / "hub.toml")]) == 0
    return tmp_path


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_each_kind_configures_from_a_minimal_table_and_passes_check_config(
        kind: str, identity_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = identity_dir / "hub.toml"
    cfg.write_text(f'[hub]\nidentity_dir = "id"\ndata_dir = "data"\n[[stations]]\nid = "room-1"\n'
                   f'[[stations.devices]]\nid = "dev-1"\ndriver = "{kind}"\n{MINIMAL[kind]}', encoding="utf-8")
    capsys.readouterr()
    code = main(["edge", "check-config", "--config", str(cfg)])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert f"device dev-1: {kind}" in out.out


def test_a_serial_path_in_port_is_refused_naming_key_and_fix(identity_dir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    cfg = identity_dir / "hub.toml"
    cfg.write_text('[hub]\nidentity_dir = "id"\n[[stations]]\nid = "room-1"\n[[stations.devices]]\nid = "hw"\n'
                   f'driver = "modbus-rtu"\nport = "/dev/ttyUSB0"\n{_REGISTERS}', encoding="utf-8")
    assert main(["edge", "check-config", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "stations[0].devices[0].port" in err and 'address = "/dev/ttyUSB0"' in err and "fix" in err
