"""Modbus stations (TCP and RTU): register map from configuration, pure codec, polling driver.

* :mod:`drivers.modbus.regmap` — the register map and its validation (ConfigError names key and fix)
* :mod:`drivers.modbus.codec` — register words -> :class:`~drivers.base.Measurement` (pure)
* :mod:`drivers.modbus.transport` — thin pymodbus links (TCP, RTU over serial)
* :mod:`drivers.modbus.driver` — polling, acknowledging, reconnecting
* :mod:`drivers.modbus.example` — the example station layout of docs/fieldbus.md
"""

from __future__ import annotations

from drivers.modbus.driver import modbus_rtu, modbus_tcp
from drivers.modbus.example import EXAMPLES, decode_example_block
from drivers.registry import CodecInfo, DriverFactory

CODECS = [
    CodecInfo("modbus-registers", "Modbus register block 0..6 (hex, high byte first) of the example "
              "height/weight station layout in docs/fieldbus.md", decode_example_block, examples=EXAMPLES),
]

DRIVERS: dict[str, DriverFactory] = {"modbus-tcp": modbus_tcp, "modbus-rtu": modbus_rtu}
