"""Coverage-guided fuzzing with atheris (libFuzzer) for longer runs than CI's hypothesis.

    python3 dev.py fuzz --list
    python3 dev.py fuzz envelope -max_total_time=600
    python3 dev.py fuzz codec:ble-bp -max_total_time=600
    python3 dev.py fuzz --all --minutes 60      # every target in turn, sharing the time; crashes in fuzz/crashes/

libFuzzer options follow the target name. Inputs that crash are written as ``crash-*``
files; copy each into ``fuzz/regressions/<target>/`` (":" becomes "_") so CI replays it
forever (tests/test_fuzz_regressions.py), then fix the parser.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run_all(minutes: float) -> int:
    """Fuzz every target in its own process for an equal share of ``minutes``; returns the number of crashes."""
    import subprocess

    from fuzz.targets import all_targets

    names = sorted(all_targets())
    share = max(10, int(minutes * 60 / len(names)))
    crashes = 0
    for name in names:
        out = Path(__file__).resolve().parent / "crashes" / name.replace(":", "_")
        out.mkdir(parents=True, exist_ok=True)
        print(f"fuzz {name}: {share} s", flush=True)
        subprocess.run([sys.executable, __file__, name, f"-max_total_time={share}", f"-artifact_prefix={out}/",
                        "-print_final_stats=0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        found = sorted(out.glob("crash-*")) + sorted(out.glob("timeout-*"))
        crashes += len(found)
        for f in found:
            print(f"  CRASH {f}: copy it into fuzz/regressions/{name.replace(':', '_')}/ and fix the parser")
        if not found:
            out.rmdir()
    print(f"{len(names)} targets, {share} s each: {crashes} crash(es)")
    return crashes


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--all":
        minutes = float(sys.argv[sys.argv.index("--minutes") + 1]) if "--minutes" in sys.argv else 30.0
        sys.exit(1 if run_all(minutes) else 0)
    import atheris

    with atheris.instrument_imports():
        from fuzz.targets import all_targets, run_one

        targets = all_targets()  # imports the device codecs: inside, so they are instrumented too
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help", "--list"):
        print(__doc__)
        print("targets:", " ".join(sorted(targets)))
        return
    name = sys.argv[1]
    if name not in targets:
        sys.exit(f"unknown target {name!r}; see --list")
    seeds = Path(__file__).resolve().parent / "seeds" / name.replace(":", "_")
    args = [sys.argv[0], *sys.argv[2:]] + ([str(seeds)] if seeds.is_dir() else [])
    atheris.Setup(args, lambda data: run_one(name, data))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
