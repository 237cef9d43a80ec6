"""Codec throughput: frames decoded per second, for every codec in the registry.

    python bench/bench_codecs.py [--seconds 0.3] [--json]

Each codec is timed on the example frames it registers (``CodecInfo.examples``), so a new
device family appears here by adding examples, with no edit to this script. The baseline
column times ``bytes(frame)`` + ``len`` on the same frames in the same process (the cost of
touching the frame at all); the ratio says how many times more a decode costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers.registry import codecs


def rate(fn: Callable[[bytes], object], frames: tuple[bytes, ...], seconds: float) -> float:
    """Frames per second of ``fn`` cycling through ``frames`` for about ``seconds``."""
    n = 0
    batch = max(1, 2000 // len(frames))
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            for frame in frames:
                fn(frame)
        n += batch * len(frames)
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def _baseline(frame: bytes) -> int:
    return len(bytes(frame))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=0.3, help="time per codec (default 0.3 s)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    rows = []
    for name, info in codecs().items():
        if not info.examples:
            rows.append({"codec": name, "frames_per_s": None, "note": "no example frames registered"})
            continue
        for frame in info.examples:  # a broken example is a bug, not a benchmark result
            info.decode(frame)
        fps = rate(info.decode, info.examples, args.seconds)
        base = rate(_baseline, info.examples, args.seconds / 3)
        avg = sum(map(len, info.examples)) / len(info.examples)
        rows.append({"codec": name, "frames_per_s": round(fps), "us_per_frame": round(1e6 / fps, 2),
                     "avg_frame_bytes": round(avg, 1), "baseline_ratio": round(base / fps, 1)})
    machine = f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPU(s), " \
              f"{_cpu_model()}"
    if args.json:
        print(json.dumps({"machine": machine, "results": rows}, indent=2))
        return 0
    print(f"codec throughput ({machine})")
    print(f"{'codec':<24} {'frames/s':>12} {'us/frame':>9} {'bytes':>6} {'x baseline':>10}")
    for r in rows:
        if r["frames_per_s"] is None:
            print(f"{r['codec']:<24} {'-':>12}  {r['note']}")
        else:
            print(f"{r['codec']:<24} {r['frames_per_s']:>12,} {r['us_per_frame']:>9} {r['avg_frame_bytes']:>6} "
                  f"{r['baseline_ratio']:>10}")
    return 0


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    raise SystemExit(main())
