"""The demo marks what it invents (issue 19 finding 2): its hub says every device is a simulator, so
each reading is flagged simulated end to end, and its cloud says it is a training rig, so those
readings may go to the demo's own HIS and MCH-platform simulators (a clinic's cloud never sends them)."""

from __future__ import annotations

from pathlib import Path

from cloud import config as cloud_config
from edge import config as hub_config
from firmware_sim.netfaults import FaultProxy
from mchub.demo.cloudside import DemoCloud
from mchub.demo.hubside import DemoHub


def test_the_demo_hub_is_simulated_and_its_cloud_a_training_rig(tmp_path: Path) -> None:
    cloud = DemoCloud(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}")
    cloud.write_config()
    assert cloud_config.load(cloud.config).fleet.training_rig is True
    hub = DemoHub("hub-A", tmp_path / "hub-A", [], FaultProxy(target_port=1))
    hub.directory.mkdir()
    hub.write_config()
    assert hub_config.load(hub.config).simulated is True
