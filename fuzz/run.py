"""Coverage-guided fuzzing with atheris (libFuzzer) for longer runs than CI's hypothesis.

    python3 dev.py fuzz --list
    python3 dev.py fuzz envelope -max_total_time=600
    python3 dev.py fuzz codec:ble-bp -max_total_time=600

libFuzzer options follow the target name. Inputs that crash are written as ``crash-*``
files; copy each into ``fuzz/regressions/<target>/`` (":" becomes "_") so CI replays it
forever (tests/test_fuzz_regressions.py), then fix the parser.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
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
