"""Bluetooth LE health devices (Bluetooth SIG profiles) driven through bleak.

| kind / codec | service | characteristic |
|---|---|---|
| ``ble-bp`` | Blood Pressure 0x1810 | Blood Pressure Measurement 0x2A35 (+ Intermediate Cuff Pressure 0x2A36, live) |
| ``ble-icp`` (codec only) | Blood Pressure 0x1810 | Intermediate Cuff Pressure 0x2A36 |
| ``ble-thermometer`` | Health Thermometer 0x1809 | Temperature Measurement 0x2A1C |
| ``ble-weight`` | Weight Scale 0x181D | Weight Measurement 0x2A9D |
| ``ble-body-composition`` | Body Composition 0x181B | Body Composition Measurement 0x2A9C |

Codecs: :mod:`.bp`, :mod:`.thermometer`, :mod:`.weight`, :mod:`.body_composition` over
:mod:`.ieee11073` numbers; stored records: :mod:`.racp`; connection manager:
:mod:`.manager`; bleak adapter: :mod:`.bleak_transport`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.base import Driver
from drivers.ble.body_composition import decode_body_composition_frame
from drivers.ble.bp import decode_bp_frame, decode_icp_frame
from drivers.ble.config import BleConfig
from drivers.ble.profiles import PROFILES
from drivers.ble.thermometer import decode_temperature_frame
from drivers.ble.weight import decode_weight_frame
from drivers.registry import CodecInfo, DriverFactory


def _hex(*frames: str) -> tuple[bytes, ...]:
    return tuple(bytes.fromhex(f) for f in frames)


CODECS: list[CodecInfo] = [
    CodecInfo(
        "ble-bp", "Bluetooth Blood Pressure Measurement 0x2A35 (indication value)", decode_bp_frame,
        examples=_hex("1e 8a00 5800 7800 e607 0411 1429 3b 3c00 01 2700", "00 7800 5000 5a00",
                      "15 bdf0 0b00 9ff0 3c00 1200"),
    ),
    CodecInfo(
        "ble-icp", "Bluetooth Intermediate Cuff Pressure 0x2A36 (live, while inflating)", decode_icp_frame,
        examples=_hex("00 d7f0 ff07 ff07", "04 8c00 ff07 ff07 4800"),
    ),
    CodecInfo(
        "ble-thermometer", "Bluetooth Temperature Measurement 0x2A1C", decode_temperature_frame,
        examples=_hex("06 b00e00fe dc07 0c05 0b321b 04", "00 720100ff"),
    ),
    CodecInfo(
        "ble-weight", "Bluetooth Weight Measurement 0x2A9D", decode_weight_frame,
        examples=_hex("00 b036", "0e b036 e807 0314 0a1e00 02 f500 d606"),
    ),
    CodecInfo(
        "ble-body-composition", "Bluetooth Body Composition Measurement 0x2A9C", decode_body_composition_frame,
        examples=_hex("0000 fa00", "020c fa00 e807 0314 0a1e00 b036 d606"),
    ),
]


def _factory(kind: str) -> DriverFactory:
    profile = PROFILES[kind]

    def build(device_id: str, table: Mapping[str, Any]) -> Driver:
        config = BleConfig.from_mapping(device_id, table)  # configuration errors before importing bleak
        from drivers.ble.bleak_transport import BleakScannerAdapter, bleak_client_factory
        from drivers.ble.manager import BleDriver

        return BleDriver(device_id, profile, config, client_factory=bleak_client_factory(config.pair),
                         scanner=BleakScannerAdapter())

    return build


DRIVERS: dict[str, DriverFactory] = {kind: _factory(kind) for kind in PROFILES}
