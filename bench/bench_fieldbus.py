"""Fieldbus codec throughput: Modbus register blocks and MQTT JSON messages decoded per second.

    .venv/bin/python bench/bench_fieldbus.py [--seconds 0.5]

Baselines in the same process: for Modbus, ``struct.unpack`` of the 7 registers (the cost
of reading the block at all); for MQTT, ``json.loads`` of the same payload (parsing without
any schema or unit work). The ratio says how many times more the real decode costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.modbus.codec import bytes_to_words, decode
from drivers.modbus.example import EXAMPLE_MAP, EXAMPLES
from drivers.mqtt.codec import EXAMPLES as MQTT_EXAMPLES
from drivers.mqtt.codec import decode_message


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    while True:
        for _ in range(1000):
            fn()
        n += 1000
        if (now := time.perf_counter()) - start >= seconds:
            return n / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement (default 0.5)")
    args = parser.parse_args()
    block, message = EXAMPLES[0], MQTT_EXAMPLES[0]
    words = bytes_to_words(block)
    rows = [
        ("modbus block (7 registers)", rate(lambda: decode(EXAMPLE_MAP, words), args.seconds),
         rate(lambda: struct.unpack(">7H", block), args.seconds)),
        (f"mqtt json ({len(message)} B)", rate(lambda: decode_message(message), args.seconds),
         rate(lambda: json.loads(message), args.seconds)),
    ]
    print(f"# {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"{'codec':<28} {'decodes/s':>12} {'baseline/s':>12} {'ratio':>7}")
    for name, real, base in rows:
        print(f"{name:<28} {real:>12,.0f} {base:>12,.0f} {base / real:>6.1f}x")


if __name__ == "__main__":
    main()
