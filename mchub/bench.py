"""``mchub bench``: run the benchmarks in bench/ and print one table.

Convention: every ``bench/bench_<name>.py`` defines ``run() -> dict[str, ...]`` (figure
name -> value) and can also run on its own. A value is either a number (its name ends
with its unit, e.g. "open x25519 readings/s") or a figure made by
``bench.common.figure``: unit, min/median/max of repeated rounds and, where the
benchmark runs one in the same process, the baseline's median and the ratio to it.
``mchub bench`` runs each in a fresh subprocess (so one benchmark's memory or threads
cannot distort the next), prints the machine, its load and one table, and with
``--json`` prints every figure as JSON for machines.

A benchmark that needs more than the edge and cloud extras (what the README's
``python3 dev.py demo`` installs) is listed in ``NEEDS``; when a need is missing it is
skipped with a note saying what to install, and ``mchub bench`` still exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"

#: units a figure name may end with besides per-something ("readings/s", "B/reading")
UNITS = ("MB", "kB", "ms", "µs", "B", "s", "%", "ratio", "x", "queries")

#: benchmark -> what it needs beyond the edge and cloud extras
NEEDS: dict[str, tuple[str, ...]] = {
    "dashboard": ("httpx", "postgresql"),
    "drain": ("postgresql",),
    "fleet": ("postgresql",),
    "hub_rss": ("mosquitto",),
    "ingest": ("postgresql",),
    "mllp": ("postgresql",),
}


def _module(name: str) -> Callable[[], bool]:
    def present() -> bool:
        try:
            return importlib.util.find_spec(name) is not None
        except ImportError:
            return False
    return present


def _postgresql() -> bool:
    sys.path.insert(0, str(ROOT))
    from tests.support.services import ServiceError, find_pg_bin

    try:
        find_pg_bin("initdb")
    except ServiceError:
        return False
    return True


def _mosquitto() -> bool:
    return bool(shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists())


#: need -> (is it present?, what to do when it is not: zh-CN / English)
REQUIREMENTS: dict[str, tuple[Callable[[], bool], str]] = {
    "httpx": (_module("httpx"), "需要开发依赖 needs the dev extra: python3 dev.py test (uv sync --extra dev)"),
    "postgresql": (_postgresql, "需要 PostgreSQL needs PostgreSQL: sudo apt-get install postgresql"),
    "mosquitto": (_mosquitto, "需要 Mosquitto needs Mosquitto: sudo apt-get install mosquitto"),
}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the bench options."""
    parser.add_argument("names", nargs="*", help="要运行的基准测试（默认：全部） / "
                                                 "benchmarks to run (default: all); e.g. envelope")
    parser.add_argument("--json", action="store_true", help="输出 JSON 而不是表格 / "
                                                            "print machine-readable JSON instead of a table")
    parser.add_argument("--list", action="store_true", help="列出基准测试（及各自所需） / "
                                                            "list the benchmarks (and what each needs)")
    parser.set_defaults(func=_run)


def available() -> list[str]:
    """Benchmark names found in bench/ (bench_<name>.py defining run())."""
    return sorted(p.stem.removeprefix("bench_") for p in BENCH.glob("bench_*.py")
                  if "def run(" in p.read_text(encoding="utf-8"))


def missing(name: str) -> list[str]:
    """The needs of a benchmark that this installation lacks (empty: it can run)."""
    return [need for need in NEEDS.get(name, ()) if not REQUIREMENTS[need][0]()]


def run_one(name: str) -> dict[str, Any]:
    """Run one benchmark in a subprocess and return its figures as ``run()`` returned them."""
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT)!r}); "
            f"from bench.bench_{name} import run; print('MCHUB-BENCH ' + json.dumps(run()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=3600)
    for line in result.stdout.splitlines():
        if line.startswith("MCHUB-BENCH "):
            figures: dict[str, Any] = json.loads(line.removeprefix("MCHUB-BENCH "))
            return figures
    raise RuntimeError(f"benchmark {name} failed: {(result.stderr or result.stdout).strip()[-500:]}")


def normalize(figure: str, value: Any) -> tuple[str, dict[str, Any]]:
    """(figure name without its unit, {unit, min, median, max, baseline, ratio}) for any value ``run()`` returns."""
    if isinstance(value, dict):
        return figure, {"unit": value.get("unit", ""), "min": value.get("min"), "median": value.get("median"),
                        "max": value.get("max"), "baseline": value.get("baseline"), "ratio": value.get("ratio")}
    unit = ""
    head, _, last = figure.rpartition(" ")
    if head and (last in UNITS or "/" in last):
        figure, unit = head, last
    return figure, {"unit": unit, "min": None, "median": value, "max": None, "baseline": None, "ratio": None}


def normalize_all(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every figure of one benchmark normalized; a number named "<figure> x baseline" becomes that figure's ratio."""
    out = dict(normalize(figure, value) for figure, value in raw.items())
    for figure in list(out):
        if figure.endswith(" x baseline"):
            base = out.get(figure.removesuffix(" x baseline"))
            if base is not None and base["ratio"] is None:
                base["ratio"] = out.pop(figure)["median"]
    return out


def _cell(value: Any, width: int) -> str:
    if value is None:
        return f"{'–':>{width}}"
    if isinstance(value, (int, float)):
        text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}" if abs(value) < 1 else f"{value:,.1f}"
        return f"{text:>{width}}"
    return f"{value!s:>{width}}"


def table_rows(bench: str, figures: dict[str, dict[str, Any]]) -> list[str]:
    """The table lines of one benchmark's figures."""
    out = []
    for figure, f in figures.items():
        ratio = None if f["ratio"] is None else f"{f['ratio']:.2f}x"
        out.append(f"{bench:<12} {figure[:52]:<52} {f['unit'][:12]:<12}"
                   + "".join(_cell(f[k], 11) for k in ("min", "median", "max", "baseline")) + _cell(ratio, 8))
    return out


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _run(args: argparse.Namespace) -> int:
    sys.path.insert(0, str(ROOT))
    from bench.common import machine

    names = available()
    if args.list:
        for name in names:
            print(name + (f"   (needs {', '.join(NEEDS[name])})" if name in NEEDS else ""))
        return 0
    chosen = args.names or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        print(f"mchub bench: 未知基准 unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names)}",
              file=sys.stderr)
        return 2
    results: dict[str, dict[str, dict[str, Any]]] = {}
    skipped: dict[str, dict[str, Any]] = {}
    failed: dict[str, str] = {}
    report: dict[str, Any] = {"machine": machine(), "load_before": _load(), "results": results,
                              "skipped": skipped, "failed": failed}
    header = (f"{'benchmark':<12} {'figure':<52} {'unit':<12}{'min':>11}{'median':>11}{'max':>11}"
              f"{'baseline':>11}{'ratio':>8}")
    if not args.json:
        print(f"机器 machine: {report['machine']}\n负载 load average (1/5/15 min): {report['load_before']}\n")
        print(header)
        print("-" * len(header))
    for name in chosen:
        lacking = missing(name)
        if lacking:
            notes = [REQUIREMENTS[need][1] for need in lacking]
            skipped[name] = {"needs": lacking, "note": "; ".join(notes)}
            if not args.json:
                print(f"{name:<12} 已跳过 skipped: {'; '.join(notes)}")
            continue
        started = time.monotonic()
        try:
            raw = run_one(name)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            failed[name] = str(exc)
            print(f"{name:<12} 失败 FAILED: {exc}", file=sys.stderr)
            continue
        results[name] = normalize_all(raw)
        if not args.json:
            print("\n".join(table_rows(name, results[name])))
            print(f"{'':<12} (用时 took {time.monotonic() - started:.0f} s)")
    report["load_after"] = _load()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"\n负载 load average after: {report['load_after']}; min/median/max 为重复轮次 of repeated rounds; "
              "ratio = 同一次运行中与基线之比 against the baseline measured in the same run")
        if skipped:
            print(f"已跳过 skipped {len(skipped)}: {', '.join(skipped)} (缺少可选组件 optional parts missing; exit 0)")
    return 1 if failed else 0
