"""``mchub bench``: run the benchmarks in bench/ and print one table.

Convention: every ``bench/bench_<name>.py`` defines ``run() -> dict[str, float]`` (figure
name -> value; names say their unit, e.g. "open x25519 readings/s") and can also run on
its own. ``mchub bench`` imports each in turn (in a fresh subprocess, so one benchmark's
memory or threads cannot distort the next), prints the machine description and one
table, and with ``--json`` prints the same as JSON for machines.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def register(parser: argparse.ArgumentParser) -> None:
    """Add the bench options."""
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all); e.g. envelope")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    parser.add_argument("--list", action="store_true", help="list the benchmarks")
    parser.set_defaults(func=_run)


def available() -> list[str]:
    """Benchmark names found in bench/ (bench_<name>.py defining run())."""
    return sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py")
                  if "def run(" in p.read_text(encoding="utf-8"))


def run_one(name: str) -> dict[str, float]:
    """Run one benchmark in a subprocess and return its figures."""
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"from bench.bench_{name} import run; print('MCHUB-BENCH ' + json.dumps(run()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600)
    for line in result.stdout.splitlines():
        if line.startswith("MCHUB-BENCH "):
            figures: dict[str, float] = json.loads(line.removeprefix("MCHUB-BENCH "))
            return figures
    raise RuntimeError(f"benchmark {name} failed: {(result.stderr or result.stdout).strip()[-500:]}")


def _run(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from bench.common import machine

    names = available()
    if args.list:
        print("\n".join(names))
        return 0
    chosen = args.names or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        print(f"mchub bench: unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names)}",
              file=sys.stderr)
        return 2
    report: dict[str, object] = {"machine": machine(), "results": {}}
    if not args.json:
        print(f"machine: {report['machine']}\n")
        print(f"{'benchmark':<14} {'figure':<52} {'value':>14}")
    failed = 0
    for name in chosen:
        started = time.monotonic()
        try:
            figures = run_one(name)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failed += 1
            figures = {}
            print(f"{name:<14} FAILED: {exc}", file=sys.stderr)
        report["results"][name] = figures  # type: ignore[index]
        if not args.json:
            for figure, value in figures.items():
                print(f"{name:<14} {figure:<52} {value:>14,.1f}")
            print(f"{'':<14} {'(took ' + format(time.monotonic() - started, '.0f') + ' s)':<52}")
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    return 1 if failed else 0
