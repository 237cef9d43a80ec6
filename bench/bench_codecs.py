"""Codec throughput: frames decoded per second, for every codec in the registry.

    .venv/bin/python bench/bench_codecs.py [--seconds 0.5] [--json]

Each codec is timed on the example frames it registers (``CodecInfo.examples``), so a new
device family appears here by adding examples, with no edit to this script. Baseline in
the same run: the same loop over the same frames doing only ``len(bytes(frame))`` (the
cost of touching a frame at all); ``x baseline`` says how many times more a decode costs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, rate
from drivers.registry import codecs


def run(seconds: float = 0.5) -> dict[str, float]:
    """Measure and return ``{"<codec> frames/s": ..., "<codec> x baseline": ...}`` (for ``mchub bench``)."""
    results: dict[str, float] = {}
    for name, info in codecs().items():
        frames = info.examples
        if not frames:
            continue
        for frame in frames:  # a broken example is a bug, not a benchmark result
            info.decode(frame)
        decode = info.decode
        fps = rate(len(frames), lambda d=decode, f=frames: [d(x) for x in f], seconds)
        base = rate(len(frames), lambda f=frames: [len(bytes(x)) for x in f], seconds / 4)
        results[f"{name} frames/s"] = fps
        results[f"{name} x baseline"] = base / fps
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=0.5, help="time per codec (default 0.5 s)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    results = run(args.seconds)
    missing = [name for name, info in codecs().items() if not info.examples]
    if args.json:
        print(json.dumps({"machine": machine(), "results": results, "no_examples": missing}, indent=2))
        return 0
    print(f"machine: {machine()}")
    print(f"{'codec':<24} {'frames/s':>12} {'us/frame':>9} {'x baseline':>11}")
    for name in codecs():
        if name in missing:
            print(f"{name:<24} {'-':>12}  (no example frames registered)")
            continue
        fps = results[f"{name} frames/s"]
        print(f"{name:<24} {fps:>12,.0f} {1e6 / fps:>9.2f} {results[f'{name} x baseline']:>11.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
