"""Helpers shared by the benchmark scripts: machine description, timing, sample records."""

from __future__ import annotations

import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Sequence

from protocol import codes
from protocol.ids import reading_uid
from protocol.model import Observation, Reading


def machine() -> str:
    """One line describing this machine (CPU model, cores, Python)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}"


def figure(rounds: Sequence[float], unit: str, baseline: Sequence[float] | None = None,
           digits: int = 1) -> dict[str, float | str | None]:
    """A figure for ``mchub bench``: min/median/max of repeated rounds and, when the same run
    measured a baseline round beside each round, the baseline's median and the median of the
    per-round ratios (never the best round, never an extrapolation)."""
    out: dict[str, float | str | None] = {"unit": unit, "min": round(min(rounds), digits),
                                          "median": round(statistics.median(rounds), digits),
                                          "max": round(max(rounds), digits), "baseline": None, "ratio": None}
    if baseline:
        out["baseline"] = round(statistics.median(baseline), digits)
        if all(baseline):  # a zero baseline (nothing counted in that round) has no ratio
            out["ratio"] = round(statistics.median(r / b for r, b in zip(rounds, baseline, strict=True)), 3)
    return out


def show(figures: dict[str, object]) -> None:
    """Print a benchmark's figures when it runs on its own."""
    for name, value in figures.items():
        if isinstance(value, dict):
            ratio = f"  baseline {value['baseline']:,}  ratio {value['ratio']}x" if value.get("baseline") else ""
            print(f"{name:<52} {value['unit']:<12} min {value['min']:>10,}  median {value['median']:>10,}  "
                  f"max {value['max']:>10,}{ratio}")
        else:
            print(f"{name:<52} {value:>12,}")


def rate(n: int, fn: Callable[[], object], min_seconds: float = 1.0) -> float:
    """Calls of ``fn`` (each handling ``n`` items) repeated for ``min_seconds``: items per second."""
    fn()  # warm up
    count, start = 0, time.perf_counter()
    while True:
        fn()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return n * count / elapsed


def sample_readings(n: int, hub_id: str = "hub-0001", epoch: int = 12345, first_seq: int = 1,
                    seed: int = 7) -> list[Reading]:
    """Realistic BP / temperature / weight readings, one every ~20 s, consecutive seqs."""
    rnd = random.Random(seed)
    t = 1_790_000_000_000
    out = []
    for i in range(n):
        t += rnd.randint(5_000, 40_000)
        seq = first_seq + i
        kind = rnd.choice(["blood_pressure", "temperature", "weight"])
        if kind == "blood_pressure":
            s, d = rnd.randint(100, 170), rnd.randint(60, 105)
            obs = (Observation(code=codes.SYSTOLIC, value=s, unit="mm[Hg]", flag="N"),
                   Observation(code=codes.DIASTOLIC, value=d, unit="mm[Hg]", flag="N"),
                   Observation(code=codes.MEAN_PRESSURE, value=round((s + 2 * d) / 3), unit="mm[Hg]"),
                   Observation(code=codes.PULSE, value=rnd.randint(55, 110), unit="/min", flag="N"))
            raw = bytes([0x1E]) + os.urandom(13)
        elif kind == "temperature":
            obs = (Observation(code=codes.TEMPERATURE, value=round(rnd.gauss(36.6, 0.4), 1), unit="Cel"),)
            raw = bytes([0x06]) + os.urandom(12)
        else:
            obs = (Observation(code=codes.WEIGHT, value=round(rnd.gauss(62, 12), 2), unit="kg"),
                   Observation(code=codes.HEIGHT, value=round(rnd.gauss(163, 8), 1), unit="cm"))
            raw = bytes([0x08]) + os.urandom(6)
        out.append(Reading(hub_id=hub_id, epoch=epoch, seq=seq, at=t, uid=reading_uid(hub_id, epoch, seq, t),
                           device_id=f"dev-{kind[:3]}-1", station_id="station-1", kind=kind,  # type: ignore[arg-type]
                           observations=obs, session_id=None, raw=raw))
    return out
