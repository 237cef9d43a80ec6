"""No invented data in production (issue 19 finding 2).

Every hub used to ship a ``synthetic`` driver (``edge/synthetic.py``, registered in
``edge/plugins.py``) that invented blood pressures with nothing marking them. Now the hub
registers only the drivers mchub ships; the synthetic source is a test plugin
(``tests.support.synthetic``) whose readings are flagged simulated; a hub whose devices
are all simulators says so (``[hub] simulated = true``) and every reading carries the mark.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from drivers.base import Measurement
from drivers.registry import driver_kinds
from edge import config, enrolled
from edge.config import DeviceConfig, validate_devices
from edge.errors import ConfigError
from edge.plugins import known_drivers
from edge.store.ledger import Item, ReadingIn
from edge.supervisor import DeviceHealth, DeviceSink
from protocol.model import SIMULATED
from provisioning.inventory import DeviceConfig as CloudDevice
from provisioning.inventory import HubConfig as Inventory
from provisioning.inventory import StationConfig as CloudStation
from tests.edge.hubkit import bp
from tests.support import synthetic

ROOT = Path(__file__).resolve().parents[2]


def test_the_hub_registers_no_synthetic_or_simulator_driver() -> None:
    assert set(known_drivers()) == set(driver_kinds())  # only what mchub ships
    assert not any("synthetic" in k or k.startswith("sim") for k in known_drivers())
    registering = [p.relative_to(ROOT) for p in (ROOT / "edge").rglob("*.py")
                   if any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "DRIVERS" for t in n.targets)
                          for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
    assert registering == []


def test_a_production_hub_refuses_a_driver_kind_it_does_not_ship(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text('[hub]\nidentity_dir = "identity"\n[[stations]]\nid = "room-1"\n[[stations.devices]]\n'
                    'id = "syn-1"\ndriver = "synthetic"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        config.load(toml)
    assert (err.value.file, err.value.key) == (str(toml), "stations[0].devices[0].driver")
    assert "unknown driver 'synthetic'" in err.value.problem and "ble-bp" in err.value.fix
    toml.write_text(toml.read_text().replace("[hub]\n", '[hub]\nplugins = ["tests.support.synthetic"]\n'))
    assert config.load(toml).devices()[0].driver == "synthetic"  # a test rig names the test plugin


def test_a_cloud_pushed_device_of_an_unknown_kind_is_refused_naming_the_key(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text('[hub]\nidentity_dir = "identity"\n', encoding="utf-8")
    pushed = Inventory(hub_id="h", site_id="s", site_name="S", version=2, issued_ms=0, stations=(
        CloudStation(station=1, devices=(CloudDevice(id="s1-syn", kind="synthetic", transport="ble",
                                                     address="AA:BB:CC:DD:EE:01"),)),))
    with pytest.raises(ConfigError) as err:
        validate_devices(enrolled.with_inventory(config.load(toml), pushed))
    assert err.value.key == "stations[0].devices[0].driver" and "no driver 'synthetic'" in err.value.problem
    assert "register the device with one of: ble-body-composition" in err.value.fix


async def test_readings_of_a_simulated_hub_and_of_the_synthetic_plugin_carry_the_mark(tmp_path: Path) -> None:
    stored: list[Item] = []

    async def submit(item: Item) -> int:
        stored.append(item)
        return len(stored)

    dev = DeviceConfig(id="bp-1", driver="serial-bp", station_id="room-1")
    for simulated in (False, True):
        sink = DeviceSink(dev, DeviceHealth("bp-1", "room-1", "serial-bp"), submit, lambda d, e: None,
                          simulated=simulated)
        await sink.event(bp(1))
    marks = [i.m.status for i in stored if isinstance(i, ReadingIn)]
    assert marks == [(), (SIMULATED,)]
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[hub]\nidentity_dir = "identity"\nsimulated = true\n', encoding="utf-8")
    assert config.load(cfg).simulated is True
    invented = synthetic.bp_measurement(1, __import__("random").Random(1))
    assert isinstance(invented, Measurement) and invented.status == (SIMULATED,)
