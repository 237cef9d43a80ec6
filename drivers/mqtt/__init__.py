"""MQTT devices: JSON measurements on a configured topic of a local broker.

* :mod:`drivers.mqtt.codec` — strict JSON message schema -> :class:`~drivers.base.Measurement` (pure)
* :mod:`drivers.mqtt.topic` — topic filter validation and matching (pure)
* :mod:`drivers.mqtt.client` — the hub's asyncio MQTT 3.1.1 client (codec: :mod:`protocol.mqtt_packets`)
* :mod:`drivers.mqtt.driver` — the subscriber: QoS 1, persistent session, ack after storing
"""

from __future__ import annotations

from drivers.mqtt.codec import EXAMPLES, decode_measurements
from drivers.mqtt.driver import mqtt_device
from drivers.registry import CodecInfo, DriverFactory

CODECS = [
    CodecInfo("mqtt-json", "one MQTT JSON measurement message (docs/fieldbus.md §2), as hex of its bytes",
              decode_measurements, examples=EXAMPLES),
]

DRIVERS: dict[str, DriverFactory] = {"mqtt": mqtt_device}
