"""An enrolled hub's configuration: the cloud's devices join hub.toml's stations (the whole flow with real
processes is tests/system/test_provisioning_e2e.py)."""

from __future__ import annotations

from pathlib import Path

from edge import config, enrolled, identity
from edge.config import validate_devices
from provisioning.inventory import DeviceConfig, HubConfig, StationConfig


def inventory(*stations: tuple[int, list[DeviceConfig]], names: dict[int, str] | None = None) -> HubConfig:
    return HubConfig(hub_id="dongcheng-h01", site_id="dongcheng", site_name="东城", version=3, issued_ms=0,
                     stations=tuple(StationConfig(station=n, devices=tuple(ds), name=(names or {}).get(n, ""))
                                    for n, ds in stations))


def test_cloud_devices_join_the_stations_of_hub_toml(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text(
        '[hub]\nidentity_dir = "identity"\nplugins = ["tests.support.synthetic"]\n'
        '[[stations]]\nid = "1"\nname = "诊室1"\n[[stations.devices]]\n'
        'id = "syn-1"\ndriver = "synthetic"\nrate = 2\n', encoding="utf-8")
    cfg = config.load(tmp_path / "hub.toml")
    bp = DeviceConfig(id="s1-ble-bp", kind="ble-bp", transport="ble", address="AA:BB:CC:DD:EE:01", label="血压计")
    clash = DeviceConfig(id="syn-1", kind="ble-weight", transport="ble", address="AA:BB:CC:DD:EE:02")
    scale = DeviceConfig(id="s2-ble-weight", kind="ble-weight", transport="ble", address="AA:BB:CC:DD:EE:03",
                         options={"unit": "kg"})
    stations = enrolled.merge_devices(cfg, inventory((1, [bp, clash]), (2, [scale]), names={1: "一诊室", 2: "二诊室"}))
    assert [(s.id, [d.id for d in s.devices]) for s in stations] == [
        ("1", ["syn-1", "s1-ble-bp"]), ("2", ["s2-ble-weight"])]  # hub.toml keeps its own syn-1
    assert stations[0].name == "诊室1" and stations[1].session_window_s == enrolled.STATION_WINDOW_S
    assert stations[1].name == "二诊室"  # a cloud station has the name the admin gave it (hub.toml's name wins)
    unnamed = enrolled.merge_devices(cfg, inventory((2, [scale])))
    assert unnamed[-1].name == "测量台 2 / station 2"
    added = stations[0].devices[1]
    assert (added.driver, added.station_id, added.address) == ("ble-bp", "1", "AA:BB:CC:DD:EE:01")
    assert added.options["address"] == "AA:BB:CC:DD:EE:01" and stations[1].devices[0].options["unit"] == "kg"
    validate_devices(config.HubConfig(path=cfg.path, identity_dir=cfg.identity_dir, data_dir=cfg.data_dir,
                                      plugins=cfg.plugins,
                                      stations=stations))  # every driver accepts its table


def test_a_hub_made_by_edge_init_is_not_enrolled(tmp_path: Path) -> None:
    (tmp_path / "hub.toml").write_text('[hub]\nidentity_dir = "identity"\n', encoding="utf-8")
    cfg = config.load(tmp_path / "hub.toml")
    assert not identity.is_enrolled(cfg.identity_dir)
    assert enrolled.with_enrollment(cfg) is cfg
