"""The example height/weight station register layout (docs/fieldbus.md §1).

Used by ``mchub decode modbus-registers`` and as a starting point for a configuration.
The simulator in ``firmware_sim/modbus.py`` encodes the same layout from the document on
its own; it never imports this module.
"""

from __future__ import annotations

from typing import Any

from drivers.base import Event
from drivers.errors import OverlongFrame, TruncatedFrame
from drivers.modbus.codec import bytes_to_words, decode
from drivers.modbus.regmap import parse_register_map

#: the layout as it would appear in hub.toml, as a Python mapping
EXAMPLE_CONFIG: dict[str, Any] = {
    "table": "holding",
    "reading_kind": "height_weight",
    "ready": {"address": 0, "ack": "echo", "ack_address": 2},
    "sequence": {"address": 1, "type": "u16"},
    "registers": [
        {"name": "height", "address": 3, "type": "u16", "scale": 0.1, "unit": "cm", "code": "8302-2"},
        {"name": "weight", "address": 4, "type": "f32", "word_order": "big", "unit": "kg", "code": "29463-7"},
        {"name": "bmi", "address": 6, "type": "u16", "scale": 0.1, "unit": "kg/m2", "code": "39156-5"},
    ],
}

EXAMPLE_MAP = parse_register_map(EXAMPLE_CONFIG, "example")

#: the worked example of docs/fieldbus.md §1 (measurement 7: 165.5 cm, 66.4 kg, BMI 24.4)
EXAMPLES: tuple[bytes, ...] = (bytes.fromhex("0001 0007 0000 0677 4284CCCD 00F4"),)

#: a register block is never longer than this many bytes (125 registers)
MAX_BLOCK_BYTES = 250


def decode_example_block(data: bytes) -> list[Event]:
    """Decode a hex-dumped block of registers 0..6 (14 bytes, high byte first) with the example map.

    Returns an empty list when the ready register is 0.
    """
    if len(data) > MAX_BLOCK_BYTES:
        raise OverlongFrame(f"{len(data)} bytes is more than one Modbus read can return", data[:MAX_BLOCK_BYTES])
    if not data:
        raise TruncatedFrame("no registers")
    frame = decode(EXAMPLE_MAP, bytes_to_words(data))
    if frame.error is not None:
        raise frame.error
    return [] if frame.measurement is None else [frame.measurement]
