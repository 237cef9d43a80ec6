"""The MQTT driver's link handling (the message flow is in tests/conformance/fieldbus_scenarios.py)."""

from __future__ import annotations

import asyncio
import json

import pytest

from drivers.errors import TransportError
from drivers.mqtt.driver import MqttDriver
from protocol.backoff import Backoff
from tests.support.fieldbus import RecordingSink
from tests.support.services import free_port
from tests.support.waiting import HANG_S


async def test_no_broker_is_a_transport_error_after_max_failures() -> None:
    driver = MqttDriver("bp-3", port=free_port(), backoff=Backoff(initial=0.01, maximum=0.01), max_failures=2)
    sink = RecordingSink()
    with pytest.raises(TransportError, match=r"mqtt 127\.0\.0\.1:\d+"):
        await asyncio.wait_for(driver.run(sink), HANG_S)
    assert sink.states == [False, False]


def message(device_id: str, seq: int = 1) -> bytes:
    return json.dumps({"device_id": device_id, "seq": seq, "time": "2024-05-01T09:30:01",
                       "measurements": [{"code": "8310-5", "value": 36.6, "unit": "Cel"}]}).encode()


@pytest.mark.parametrize(("topic_filter", "topic", "payload", "outcome"), [
    ("clinic/{device_id}/measurement", "clinic/bp-3/measurement", message("bp-3"), "event"),
    ("clinic/{device_id}/measurement", "clinic/bp-3/measurement", message("bp-4"), "schema"),
    ("clinic/+/measurement", "clinic/bp-4/measurement", message("bp-4"), "ignored"),  # bp-4's own driver
    ("clinic/+/measurement", "clinic/bp-3/measurement", message("bp-4"), "schema"),
    ("clinic/#", "clinic/ward-2/bp-4", message("bp-4"), "ignored"),
    ("clinic/#", "clinic/ward-2/bp-3", message("bp-3"), "event"),
    ("clinic/{device_id}/measurement", "clinic/other", message("bp-3"), "schema"),
])
async def test_whose_messages_a_wildcard_subscription_takes(topic_filter: str, topic: str, payload: bytes,
                                                             outcome: str) -> None:
    driver = MqttDriver("bp-3", topic=topic_filter)
    sink = RecordingSink()
    await driver._handle(sink, topic, payload)
    await driver._handle(sink, topic, payload)  # a QoS 1 redelivery
    got = "event" if sink.events else sink.errors[0].reason if sink.errors else "ignored"
    assert got == outcome
    assert len(sink.events) <= 1 and len(sink.errors) <= 2
