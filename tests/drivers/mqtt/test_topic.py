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


@pytest.mark.parametrize(("config", "message"), [
    ({"port": "1883"}, "device 'bp-3'.port: '1883' is not an integer in 1..65535; fix: write port = 1883"),
    ({"keepalive": 1}, "device 'bp-3'.keepalive: 1 is not an integer in 5..3600; fix: write keepalive = 30"),
    ({"host": ""}, "device 'bp-3'.host: '' is not a non-empty text; fix: write host = \"127.0.0.1\""),
    ({"reconnect_max": 0}, "device 'bp-3'.reconnect_max: 0 is not a number > 0; fix: write a positive number"),
])
def test_a_wrong_type_or_range_says_what_the_key_takes(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        mqtt_device("bp-3", config)
    assert str(err.value).startswith(message), err.value


def test_the_topic_defaults_to_the_device_id() -> None:
    driver = mqtt_device("bp-3", {})
    assert driver.topic == "clinic/bp-3/measurement" and driver.client_id == "mchub-bp-3"
    assert mqtt_device("hub-dev-7", {"device": "bp-3", "topic": "ward/{device_id}/+"}).topic == "ward/bp-3/+"
