"""Topic filters, checked against the examples of MQTT 3.1.1 §4.7 (OASIS standard, 2014)."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.errors import ConfigError
from drivers.mqtt.driver import mqtt_device
from drivers.mqtt.topic import check_filter, match


@pytest.mark.parametrize(("pattern", "topic", "captured"), [
    ("sport/tennis/player1/#", "sport/tennis/player1", ("",)),
    ("sport/tennis/player1/#", "sport/tennis/player1/ranking", ("ranking",)),
    ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", ("score/wimbledon",)),
    ("sport/#", "sport", ("",)),
    ("sport/tennis/+", "sport/tennis/player1", ("player1",)),
    ("sport/tennis/+", "sport/tennis/player1/ranking", None),
    ("sport/+", "sport", None),
    ("sport/+", "sport/", ("",)),
    ("+/+", "/finance", ("", "finance")),
    ("/+", "/finance", ("finance",)),
    ("+", "/finance", None),
    ("#", "$SYS/broker/load", None),
    ("+/monitor/Clients", "$SYS/monitor/Clients", None),
    ("$SYS/#", "$SYS/broker/load", ("broker/load",)),
    ("clinic/+/measurement", "clinic/bp-3/measurement", ("bp-3",)),
])
def test_matching(pattern: str, topic: str, captured: tuple[str, ...] | None) -> None:
    check_filter(pattern)
    assert match(pattern, topic) == captured


@pytest.mark.parametrize("pattern", ["", "sport/tennis#", "sport/tennis/#/ranking", "sport+", "a/\x00"])
def test_invalid_filters(pattern: str) -> None:
    with pytest.raises(ValueError):
        check_filter(pattern)


@pytest.mark.parametrize(("config", "key"), [
    ({"topic": "clinic/#/x"}, "topic"),
    ({"port": 0}, "port"),
    ({"host": 5}, "host"),
    ({"reconnect_max": -1}, "reconnect_max"),
])
def test_driver_configuration_errors_name_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^device 'bp-3'\.{key}: .*fix|^device 'bp-3'\.{key}: "):
        mqtt_device("bp-3", config)


def test_the_topic_defaults_to_the_device_id() -> None:
    driver = mqtt_device("bp-3", {})
    assert driver.topic == "clinic/bp-3/measurement" and driver.client_id == "mchub-bp-3"
    assert mqtt_device("hub-dev-7", {"device": "bp-3", "topic": "ward/{device_id}/+"}).topic == "ward/bp-3/+"
