"""The MQTT driver's link handling (the message flow is in tests/conformance/test_fieldbus.py)."""

from __future__ import annotations

import asyncio

import pytest

from drivers.backoff import Backoff
from drivers.errors import TransportError
from drivers.mqtt.driver import MqttDriver
from tests.support.fieldbus import RecordingSink
from tests.support.services import free_port


async def test_no_broker_is_a_transport_error_after_max_failures() -> None:
    driver = MqttDriver("bp-3", port=free_port(), backoff=Backoff(initial=0.01, maximum=0.01), max_failures=2)
    sink = RecordingSink()
    with pytest.raises(TransportError, match=r"mqtt 127\.0\.0\.1:\d+"):
        await asyncio.wait_for(driver.run(sink), 30)
    assert sink.states == [False, False]
