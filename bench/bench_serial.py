"""Serial stream decoders: frames/s through each decoder, bulk reads vs one byte per read.

    .venv/bin/python bench/bench_serial.py [--seconds 0.4]

``bench_codecs.py`` times the single-frame codecs; this one times the *stream* path a
driver uses (buffering, resync, line splitting). Baseline in the same run: the same
stream fed one byte per call, the worst case a slow UART produces; ``x bulk`` says how
much batching reads buys. A Raspberry Pi at 115200 baud receives at most ~11.5 kB/s,
i.e. ~9 ID-card read answers or ~1,100 A5 frames per second.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, rate
from drivers.idcard.card import decode_read_data
from drivers.idcard.frame import Response, ResponseDecoder
from drivers.stations import EXAMPLES, accutorr, detecto, tanita
from drivers.stations.a5 import A5Decoder
from firmware_sim.idcard_sim import read_answer
from firmware_sim.patients import make_patient

Feed = Callable[[bytes], list[object]]


def _idcard() -> Feed:
    decoder = ResponseDecoder()

    def feed(data: bytes) -> list[object]:
        return [decode_read_data(r.data) if isinstance(r, Response) else r for r in decoder.feed(data)]

    return feed


def _cases() -> list[tuple[str, Callable[[], Feed], bytes, int]]:
    rng = random.Random(1)
    cards = [read_answer(make_patient(rng, "adult", dt.date(2025, 3, 1))) for _ in range(20)]
    bp = b"".join(b"P:--,85,%3d, 93, 80,000,000,000, 0\r\n" % (100 + i) for i in range(100))
    return [
        ("idcard-read", _idcard, b"".join(cards), len(cards)),
        ("a5-station", lambda: A5Decoder().feed, EXAMPLES["a5-station"][0] * 200, 200),
        ("tanita-csv", lambda: tanita.decoder().feed, EXAMPLES["tanita-csv"][0] * 100, 100),
        ("detecto", lambda: detecto.decoder().feed, EXAMPLES["detecto"][0] * 100, 100),
        ("accutorr-bp", lambda: accutorr.AccutorrDecoder().feed, bp, 100),
    ]


def _stream(make: Callable[[], Feed], stream: bytes, chunk: int) -> Callable[[], object]:
    def go() -> object:
        feed = make()
        return [feed(stream[i:i + chunk]) for i in range(0, len(stream), chunk)]

    return go


def run(seconds: float = 0.4) -> dict[str, float]:
    """``{"<codec> stream frames/s": ..., "<codec> x bulk": ...}`` (for ``mchub bench``)."""
    results: dict[str, float] = {}
    for name, make, stream, frames in _cases():
        bulk = rate(frames, _stream(make, stream, 4096), seconds)
        byte = rate(frames, _stream(make, stream, 1), seconds)
        results[f"{name} stream frames/s"] = bulk
        results[f"{name} x bulk"] = bulk / byte
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=0.4, help="time per measurement (default 0.4 s)")
    args = parser.parse_args(argv)
    results = run(args.seconds)
    print(f"machine: {machine()}")
    print(f"{'stream decoder':<14} {'frames/s (4 KiB reads)':>23} {'frames/s (1 B reads)':>21} {'x bulk':>7}")
    for name, *_ in _cases():
        bulk, ratio = results[f"{name} stream frames/s"], results[f"{name} x bulk"]
        print(f"{name:<14} {bulk:>23,.0f} {bulk / ratio:>21,.0f} {ratio:>6.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
