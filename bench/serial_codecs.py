"""Serial codec throughput: frames/s through each stream decoder, bulk vs byte-at-a-time.

Run: ``.venv/bin/python bench/serial_codecs.py`` (about 5 s). The baseline in the same
process is the same stream fed one byte per call (the worst case a slow UART produces);
the ratio shows what batching reads buys. A Raspberry Pi at 115200 baud receives at most
~11.5 kB/s, so anything above a few thousand frames/s leaves the CPU idle.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import random
import time
from collections.abc import Callable

from drivers.idcard.card import decode_read_data
from drivers.idcard.frame import Response, ResponseDecoder
from drivers.stations import EXAMPLES, accutorr, detecto, tanita
from drivers.stations.a5 import A5Decoder
from firmware_sim.idcard_sim import read_answer
from firmware_sim.patients import make_patient

Feed = Callable[[bytes], list[object]]


def rate(make: Callable[[], Feed], stream: bytes, frames: int, chunk: int, seconds: float = 0.4) -> float:
    """Frames per second decoding ``stream`` in ``chunk``-byte reads."""
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        feed = make()
        for i in range(0, len(stream), chunk):
            feed(stream[i:i + chunk])
        done += frames
    return done / (time.perf_counter() - start)


def idcard_feed() -> Feed:
    decoder = ResponseDecoder()

    def feed(data: bytes) -> list[object]:
        return [decode_read_data(r.data) if isinstance(r, Response) else r for r in decoder.feed(data)]

    return feed


def main() -> None:
    rng = random.Random(1)
    cards = [read_answer(make_patient(rng, "adult", dt.date(2025, 3, 1))) for _ in range(20)]
    cases: list[tuple[str, Callable[[], Feed], bytes, int]] = [
        ("idcard read answer (1295 B)", idcard_feed, b"".join(cards), len(cards)),
        ("a5-station (10 B)", lambda: A5Decoder().feed, EXAMPLES["a5-station"][0] * 200, 200),
        ("tanita-csv line", lambda: tanita.decoder().feed, EXAMPLES["tanita-csv"][0] * 100, 100),
        ("detecto line", lambda: detecto.decoder().feed, EXAMPLES["detecto"][0] * 100, 100),
        ("accutorr-bp line", lambda: accutorr.AccutorrDecoder().feed,
         b"".join(b"P:--,85,%3d, 93, 80,000,000,000, 0\r\n" % (100 + i) for i in range(100)), 100),
    ]
    print(f"serial codecs — {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}")
    print(f"{'codec':30} {'frames/s (4 KiB reads)':>24} {'frames/s (1 B reads)':>22} {'ratio':>7}")
    for name, make, stream, frames in cases:
        bulk = rate(make, stream, frames, 4096)
        byte = rate(make, stream, frames, 1)
        print(f"{name:30} {bulk:24,.0f} {byte:22,.0f} {bulk / byte:6.1f}x")


if __name__ == "__main__":
    main()
