#!/usr/bin/env python3
"""Bootstrap and developer entry point for mchub. Needs only python3 >= 3.11.

    python3 dev.py demo [ARGS]   create .venv from uv.lock if needed, then run `mchub demo ARGS`
    python3 dev.py test [ARGS]   create .venv, then ruff, mypy --strict (protocol, drivers, provisioning), pytest
    python3 dev.py mchub ARGS    run any mchub command inside the project environment
    python3 dev.py fuzz TARGET   coverage-guided fuzzing with atheris (fuzz/README.md; --all --minutes N: every target)
    python3 dev.py soak [ARGS]   fleet soak + long system fault tests (bench/soak.py: --minutes 30 --hubs 3000)
    python3 dev.py soak --hub    1-hour hub soak: every driver kind, sync, web polled; RSS slope and
                                 hub.db bytes per reading (bench/bench_hub_rss.py; --minutes N)
    python3 dev.py lock          re-resolve uv.lock after editing pyproject.toml dependencies

The environment is built by uv (pinned below, installed from PyPI into .tools/) with
`uv sync --frozen`, so every install uses exactly the versions recorded in uv.lock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
TOOLS = ROOT / ".tools"
VENV = ROOT / ".venv"
UV_VERSION = "0.13.9"


def _fail(message: str) -> None:
    print(f"dev.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def _uv() -> Path:
    uv = TOOLS / "bin" / "uv"
    if uv.exists():
        return uv
    if sys.version_info < (3, 11):
        _fail(f"mchub needs Python >= 3.11; this is {sys.version.split()[0]}")
    print(f"dev.py: installing uv {UV_VERSION} into .tools/ (one time)", flush=True)
    try:
        venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
    except Exception as exc:  # ensurepip is missing on a bare Debian/Raspberry Pi OS
        shutil.rmtree(TOOLS, ignore_errors=True)
        if os.geteuid() == 0 and shutil.which("apt-get"):
            subprocess.run(["apt-get", "install", "-y", "-q", "python3-venv"], check=True)
            venv.EnvBuilder(with_pip=True, clear=True).create(TOOLS)
        else:
            _fail(f"cannot create a virtual environment ({exc}); run: sudo apt-get install python3-venv")
    subprocess.run(
        [str(TOOLS / "bin" / "python"), "-m", "pip", "install", "-q", f"uv=={UV_VERSION}"], check=True
    )
    return uv


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        UV_PROJECT_ENVIRONMENT=str(VENV),
        UV_PYTHON=sys.executable,
        UV_PYTHON_DOWNLOADS="never",
        UV_NO_PROGRESS="1",
    )
    return env


def sync(extras: list[str], exact: bool = True) -> None:
    """Make .venv match uv.lock with the given extras (``exact=False``: remove nothing extra)."""
    args = [str(_uv()), "sync", "--frozen", "--quiet"] + ([] if exact else ["--inexact"])
    for extra in extras:
        args += ["--extra", extra]
    subprocess.run(args, cwd=ROOT, env=_env(), check=True)


def run(cmd: list[str]) -> int:
    return subprocess.run(cmd, cwd=ROOT).returncode


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0
    verb, rest = argv[0], argv[1:]
    bin_ = VENV / "bin"
    if verb == "lock":
        return subprocess.run([str(_uv()), "lock"], cwd=ROOT, env=_env()).returncode
    if verb in {"demo", "mchub"}:
        sync(["edge", "cloud"], exact=False)
        cmd = [str(bin_ / "mchub")] + (["demo"] if verb == "demo" else []) + rest
        os.execv(cmd[0], cmd)
    if verb == "fuzz":
        sync(["edge", "cloud", "dev", "fuzz"])
        return run([str(bin_ / "python"), "fuzz/run.py", *rest])
    if verb == "soak" and rest[:1] == ["--hub"]:
        sync(["edge", "cloud", "dev"])
        args = rest[1:] if any(a in rest for a in ("--minutes", "--seconds")) else ["--minutes", "60", *rest[1:]]
        return run([str(bin_ / "python"), "-m", "bench.bench_hub_rss", "--warmup", "600", *args])
    if verb == "soak":
        sync(["edge", "cloud", "dev"])
        return run([str(bin_ / "python"), "-m", "bench.soak", "--system", *rest])
    if verb == "test":
        sync(["edge", "cloud", "dev"])
        steps = [
            [str(bin_ / "ruff"), "check", "."],
            [str(bin_ / "mypy"), "protocol", "drivers", "provisioning"],
            [str(bin_ / "python"), "-m", "pytest", *rest],
        ]
        for step in steps:
            print("$ " + " ".join(Path(step[0]).name if i == 0 else a for i, a in enumerate(step)), flush=True)
            code = run(step)
            if code != 0:
                print(f"dev.py: FAILED: {' '.join(step[1:3])} exited {code}", file=sys.stderr)
                return code
        return 0
    _fail(f"unknown command {verb!r}; see python3 dev.py --help")
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
