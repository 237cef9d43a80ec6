"""The hub's memory and database over time, with every shipped driver kind, sync, MQTT and web polling.

Runs ``python -m mchub edge run`` in the rig of ``bench/hub_rig.py`` (every driver kind fed
by the ``mchub sim`` simulators, sync to the reference receiver, MQTT command channel and
telemetry, the status page, JSON status and kiosk polled with their event streams) and
samples the hub's resident memory every ``--sample`` seconds. Reports:

* the RSS slope after warm-up (least squares over the samples after ``--warmup``), MB/hour,
  for the whole measured time and as min/median/max over its three thirds (or over
  ``--rounds`` independent runs);
* the RSS after warm-up (min/median/max of the samples) and the peak (VmHWM);
* hub.db bytes per stored reading: while running (file and WAL over the readings kept, at
  every sample) and after the hub stopped cleanly (the WAL folded in).

``mchub bench hub_rss`` runs a short form (180 s); the 1-hour soak is
``python3 dev.py soak --hub`` (exit 1 when the slope exceeds ``--max-slope``, 0.1 MB/h).

    .venv/bin/python -m bench.bench_hub_rss --seconds 600 --warmup 120
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

from bench.common import figure, machine, show
from bench.hub_rig import KINDS, HubRig, stop_rigs_on_sigterm, vm_kb


def slope_per_hour(times: list[float], values: list[float]) -> float:
    """Least-squares slope of ``values`` over ``times`` (seconds), per hour."""
    if len(times) < 2:
        return 0.0
    mt, mv = statistics.fmean(times), statistics.fmean(values)
    den = sum((t - mt) ** 2 for t in times)
    return sum((t - mt) * (v - mv) for t, v in zip(times, values, strict=True)) / den * 3600 if den else 0.0


def window_slopes(times: list[float], values: list[float], windows: int = 3) -> list[float]:
    """The slope (per hour) of each of ``windows`` consecutive equal parts of the samples."""
    size = len(times) // windows
    if size < 2:
        return [slope_per_hour(times, values)]
    return [slope_per_hour(times[i * size:(i + 1) * size], values[i * size:(i + 1) * size]) for i in range(windows)]


def one_round(seconds: float, warmup: float, sample: float, quiet: bool) -> dict[str, Any]:
    """One run of the rig: RSS and database samples after warm-up, peak, the database after a clean stop."""
    rig = HubRig()
    try:
        rig.start()
        assert rig.hub is not None
        started = time.monotonic()
        times: list[float] = []
        rss: list[float] = []
        per_reading: list[float] = []
        while (elapsed := time.monotonic() - started) < seconds:
            time.sleep(sample)
            if rig.hub.poll() is not None:
                raise RuntimeError(f"hub exited {rig.hub.returncode}: {rig.log()[-2000:]}")
            if elapsed >= warmup:
                times.append(elapsed)
                rss.append(rig.rss_kb() / 1024)
                per_reading.append(rig.db_bytes() / max(sum(rig.stored().values()), 1))
                if not quiet:
                    print(f"  t={elapsed:6.0f}s RSS {rss[-1]:6.1f} MB  slope so far "
                          f"{slope_per_hour(times, rss):+6.2f} MB/h  hub.db {per_reading[-1]:5.0f} B/reading",
                          flush=True)
        peak = vm_kb(rig.hub.pid, "VmHWM") / 1024
        fetches = rig.poller.fetches if rig.poller else 0
        rig.stop()  # a clean stop checkpoints the WAL into hub.db
        stored = rig.stored()
        readings = sum(stored.values())
        missing = [k for k in KINDS if k != "idcard" and not any(d.startswith(_prefix(k)) for d in stored)]
        if missing:
            raise RuntimeError(f"no readings from driver kind(s) {missing}: {rig.log()[-2000:]}")
        return {"slope": slope_per_hour(times, rss), "windows": window_slopes(times, rss), "rss": rss,
                "peak": peak, "per_reading": per_reading, "stopped": rig.db_bytes() / max(readings, 1),
                "readings": readings, "fetches": fetches}
    finally:
        rig.destroy()


def run(seconds: float = 180.0, warmup: float = 60.0, sample: float = 5.0, quiet: bool = True,
        rounds: int = 1) -> dict[str, Any]:
    """Run the rig ``rounds`` times; returns the figures (also used by ``mchub bench``).

    With one round, the slope's min/median/max are those of the three consecutive thirds of
    the measured time (each fitted on its own); with more, those of the rounds' whole slopes.
    """
    done = [one_round(seconds, warmup, sample, quiet) for _ in range(rounds)]
    slopes = [r["slope"] for r in done] if rounds > 1 else done[0]["windows"]
    return {"hub RSS slope after warm-up MB/h": figure(slopes, "MB/h", digits=2),
            "hub RSS slope, whole measured time MB/h": round(statistics.median(r["slope"] for r in done), 2),
            "hub RSS after warm-up MB": figure([v for r in done for v in r["rss"]], "MB"),
            "hub peak RSS MB": figure([r["peak"] for r in done], "MB"),
            "hub.db bytes per stored reading while running B": figure(
                [v for r in done for v in r["per_reading"]], "B", digits=0),
            "hub.db bytes per stored reading after a clean stop B": figure([r["stopped"] for r in done], "B",
                                                                            digits=0),
            "readings stored": figure([r["readings"] for r in done], "readings", digits=0),
            "driver kinds": len(KINDS), "web requests": figure([r["fetches"] for r in done], "requests", digits=0),
            "rounds": rounds,
            "seconds measured after warm-up": round(seconds - warmup)}


def _prefix(kind: str) -> str:
    return {"serial-station": "hw-", "serial-bp": "bp-", "modbus-tcp": "mb-tcp-", "modbus-rtu": "mb-rtu-",
            "mqtt": "mq-"}.get(kind, kind)


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    p = argparse.ArgumentParser(prog="bench_hub_rss", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=180.0, help="how long the hub runs (default 180)")
    p.add_argument("--minutes", type=float, help="the same in minutes")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds before the slope is measured (default 60)")
    p.add_argument("--sample", type=float, default=5.0, help="seconds between samples (default 5)")
    p.add_argument("--rounds", type=int, default=1, help="independent runs (default 1)")
    p.add_argument("--max-slope", type=float, default=0.1, help="MB/h above which memory counts as growing")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = p.parse_args(argv)
    seconds = args.minutes * 60 if args.minutes else args.seconds
    stop_rigs_on_sigterm()
    print(machine(), flush=True)
    figures = run(seconds, args.warmup, args.sample, quiet=args.json, rounds=args.rounds)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        show(figures)
    slope = float(figures["hub RSS slope, whole measured time MB/h"])
    flat = slope <= args.max_slope
    per_reading = figures["hub.db bytes per stored reading after a clean stop B"]["median"]
    print(f"内存 memory: slope {slope:+.2f} MB/h after warm-up -> {'平稳 flat' if flat else '增长 GROWING'} "
          f"(limit {args.max_slope} MB/h); 峰值 peak {figures['hub peak RSS MB']['median']} MB; "
          f"数据库 database {per_reading} B/reading")
    return 0 if flat else 1


if __name__ == "__main__":
    sys.exit(main())
