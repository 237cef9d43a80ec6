"""Every command the CLI prints for the user to run works as printed.

Real processes in a scratch directory, as an installer would do it: `mchub cloud init`,
`mchub edge init` with the cloud's published keys, then each `mchub ...` line edge init
printed is run exactly as printed, next to cloud.toml. Refusals that name a command
(`mchub edge run` on a hub that is not enrolled) name one the parser accepts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cloud.intake.keystore import load_keys
from tests.support.commands import commands_in, parse_error, reference_error, split

ROOT = Path(__file__).resolve().parent.parent


def mchub(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "mchub", *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120, check=False)


def test_edge_init_prints_a_cloud_hub_add_that_works_as_printed(tmp_path: Path) -> None:
    done = mchub(tmp_path, "cloud", "init", "--config", "cloud.toml")
    assert done.returncode == 0, done.stderr
    listed = mchub(tmp_path, "cloud", "hub", "list")
    assert listed.returncode == 0 and "no hubs yet" in listed.stdout and "还没有网关" in listed.stdout
    empty = mchub(tmp_path, "cloud", "outbox", "list")
    assert empty.returncode == 0, empty.stderr
    assert "nothing queued" in empty.stdout and "出站队列为空" in empty.stdout
    # the cloud's published key document (GET /api/v1/keys) is what the hub installer is handed
    doc = load_keys(tmp_path / "keys").public_document()
    (tmp_path / "cloud.json").write_text(json.dumps(doc), encoding="utf-8")

    refused = mchub(tmp_path, "edge", "run", "--config", "hub.toml")  # no such file yet: names the fix
    assert refused.returncode == 2 and "fix:" in refused.stderr
    (tmp_path / "hub.toml").write_text('[hub]\nidentity_dir = "identity"\ndata_dir = "data"\n', encoding="utf-8")
    refused = mchub(tmp_path, "edge", "run", "--config", "hub.toml")
    assert refused.returncode == 2 and "not enrolled" in refused.stderr and "尚未注册" in refused.stderr
    named = commands_in(refused.stderr)
    assert [argv[:2] for argv in named] == [["provision", "token"], ["provision", "token"], ["edge", "enroll"],
                                            ["edge", "init"]]  # the token command is named in zh and en
    assert all(parse_error(argv) is None for argv in named), [parse_error(a) for a in named]

    init = mchub(tmp_path, "edge", "init", "--hub-id", "clinic-042", "--cloud-key", "cloud.json",
                 "--config", "hub.toml")
    assert init.returncode == 0, init.stderr
    commands = commands_in(init.stdout)
    assert [argv[:3] for argv in commands] == [["cloud", "hub", "add"]]
    for argv in commands:
        ran = mchub(tmp_path, *argv)
        assert ran.returncode == 0, f"mchub {' '.join(argv)}: {ran.stderr}"
        assert "clinic-042 registered" in ran.stdout
    listed = mchub(tmp_path, "cloud", "hub", "list")
    assert "clinic-042" in listed.stdout and "1 hub(s)" in listed.stdout
    check = mchub(tmp_path, "edge", "check-config", "--config", "hub.toml")
    assert check.returncode == 0 and "hub clinic-042" in check.stdout


def _named_in_source() -> list[tuple[str, int, str]]:
    """Every `mchub ...` in backticks in the programs' text: messages, help, docstrings."""
    found = []
    for package in ("edge", "cloud", "provisioning", "mchub", "firmware_sim", "drivers", "protocol", "webui"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                found += [(path.relative_to(ROOT).as_posix(), number, m.group(1))
                          for m in re.finditer(r"`(mchub [a-z][^`]*)`", line)]
    return found


NAMED = _named_in_source()


def test_every_command_named_in_the_programs_exists() -> None:
    """A message that says "run `mchub edge init`" names a command and flags that exist."""
    assert len(NAMED) > 100
    wrong = []
    for path, number, text in NAMED:
        argv = split(text)
        if argv is None or argv[0].endswith(":"):  # `mchub decode: CODEC: REASON` is a message format
            continue
        if problem := reference_error(argv):
            wrong.append(f"{path}:{number}: {text}: {problem}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("argv", [["edge", "audit", "verify"], ["edge", "init", "--identity", "DIR"]])
def test_a_command_that_does_not_exist_is_caught(argv: list[str]) -> None:
    assert reference_error(argv) is not None


REFUSALS = [
    ["cloud", "outbox", "replay", "999"],
    ["cloud", "mch", "show", "CX-1-20250101"],
    ["cloud", "migrate", "--config", "missing.toml"],
    ["edge", "status", "--config", "missing.toml"],
    ["provision", "site", "list", "--session-file", "no-session.json"],
    ["provision", "site", "add", "S001", "--name", "城关镇卫生院", "--session-file", "no-session.json"],
]


@pytest.mark.parametrize("argv", REFUSALS, ids=[" ".join(a[:3]) for a in REFUSALS])
def test_a_refusal_says_what_to_do_next(argv: list[str], tmp_path: Path) -> None:
    """The refusal exits non-zero and names the next step: a command that exists, or a `fix:` line."""
    assert mchub(tmp_path, "cloud", "init", "--config", "cloud.toml").returncode == 0
    env = {k: v for k, v in os.environ.items() if k != "MCHUB_ADMIN_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "mchub", *argv], cwd=tmp_path, capture_output=True, text=True,
                          env={**env, "PYTHONPATH": str(ROOT)}, timeout=120, check=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr
    named = commands_in(done.stderr)
    assert "fix:" in done.stderr.lower() or "use '" in done.stderr or any(
        reference_error(a) is None for a in named), f"no next step in: {done.stderr}"

