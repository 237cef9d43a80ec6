"""Every code block in the docs is run or parsed by a test, or listed here as not runnable with a reason.

Each fenced block names its language, so a command cannot hide in an untagged block:

* ``sh`` (commands) and ``console`` (a transcript: ``$ `` lines are commands, the rest output):
  an ``mchub ...`` line is parsed by the real parser and, when it needs no server, run
  (``tests/test_docs_commands.py``); every other command line must match one of
  :data:`NOT_RUN`, which says why it is not run here and checks what can be checked without
  running it (the file, module, test path, systemd unit or URL it names exists);
* ``toml``: loaded by the real configuration loaders (``tests/test_docs_config.py``);
* ``json``: parsed here; a device message is decoded by the MQTT device codec;
* ``ini`` (a systemd unit): parsed here, its ``ExecStart`` by the mchub parser;
* ``python``: compiled here;
* ``nginx``: not runnable here (:data:`NOT_RUN_BLOCKS`), checked against deploy/cloud/nginx.conf;
* ``text`` (diagrams, printed output): must not hold an ``mchub`` command line.
"""

from __future__ import annotations

import configparser
import importlib.util
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.commands import parse_error, split

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
_FENCE = re.compile(r"^(\s*)```\s*([\w-]*)\s*$")
LANGUAGES = {"sh", "console", "toml", "json", "ini", "python", "nginx", "text"}


def blocks(path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """(line number of the opening fence, language, body lines) of every fenced block."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if fence:
            indent, start, body = len(fence.group(1)), i + 1, []
            i += 1
            while not _FENCE.match(lines[i]):
                body.append(lines[i][indent:])
                i += 1
            yield start, fence.group(2), body
        i += 1


BLOCKS = [(p.relative_to(ROOT).as_posix(), n, lang, body) for p in DOCS for n, lang, body in blocks(p)]


def command_lines(lang: str, body: list[str]) -> Iterator[str]:
    """The commands of a ``sh`` or ``console`` block, continuation lines joined, comments left on."""
    pending = ""
    for raw in body:
        line = pending + raw.strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if lang == "console":
            if not line.startswith("$ "):
                continue  # what the command printed
            line = line[2:]
        if line and not line.startswith("#"):
            yield line


def _exists(*paths: str) -> str | None:
    missing = [p for p in paths if not (ROOT / p).exists()]
    return f"no such file: {missing}" if missing else None


def _module(line: str) -> str | None:
    """``python -m MODULE ...``: the module exists (and a test path it names)."""
    module = re.search(r"-m ([\w.]+)", line)
    assert module is not None
    if importlib.util.find_spec(module.group(1)) is None:
        return f"no module {module.group(1)}"
    return _exists(*re.findall(r"(?<!\S)(tests/[\w/.]+)", line))


def _dev_py(line: str) -> str | None:
    """``python3 dev.py VERB ...``: dev.py knows the verb, and the test paths named exist."""
    verb = line.split()[2]
    if f'"{verb}"' not in (ROOT / "dev.py").read_text(encoding="utf-8"):
        return f"dev.py has no verb {verb!r}"
    return _exists(*re.findall(r"(?<!\S)(tests/[\w/.]+)", line))


def _unit(line: str) -> str | None:
    """A systemd command on a unit this repository installs (deploy/*/NAME.service)."""
    unit = re.search(r"(mchub-[\w-]+)", line)
    assert unit is not None
    found = list(ROOT.glob(f"deploy/*/{unit.group(1)}.service"))
    return None if found else f"no unit {unit.group(1)}.service under deploy/"


def _url(line: str) -> str | None:
    """``curl URL``: the cloud serves that path (it is named in the cloud's code)."""
    url = re.search(r"https?://[^/\s]+(/[\w/.-]*)", line)
    assert url is not None
    path = url.group(1)
    named = any(path in p.read_text(encoding="utf-8") for p in (ROOT / "cloud").rglob("*.py"))
    return None if named else f"the cloud names no path {path}"


#: command lines of the docs that are not mchub and are not run by the tests:
#: (pattern, why not, what is checked instead)
NOT_RUN: list[tuple[str, str, Callable[[str], str | None]]] = [
    (
        r"^python3 dev\.py (demo|test|soak|fuzz)\b",
        "syncs the virtual environment and runs the demo or whole test, soak or fuzz suites (minutes to hours)",
        _dev_py,
    ),
    (
        r"^(\.venv/bin/)?python3? -m (bench|firmware_sim|pytest)\b",
        "a benchmark, a long-running simulator or a test run: each is itself run by the tests or by mchub bench",
        _module,
    ),
    (r"^python bench/[\w]+\.py\b", "a benchmark (mchub bench runs it)", lambda line: _exists(line.split()[1])),
    (
        r"^sudo deploy/edge/install\.sh$",
        "installs system users and units: needs root on the target machine",
        lambda line: _exists("deploy/edge/install.sh"),
    ),
    (
        r"^sudo nano /etc/mchub/hub\.toml\b",
        "an editor: what is written there is checked by tests/test_docs_config.py",
        lambda line: _exists("deploy/edge/hub.example.toml"),
    ),
    (
        r"^(sudo systemctl (start|stop|restart|reload)|journalctl -u) mchub-edge\b",
        "systemd on the installed machine (needs root and the installed unit)",
        _unit,
    ),
    (r"^curl\b", "asks a running cloud (the API and /metrics are tested in tests/cloud)", _url),
]

#: whole blocks that are not run, with the reason and what is checked instead
NOT_RUN_BLOCKS: dict[str, str] = {
    "nginx": "a fragment of the nginx site (needs nginx); deploy/cloud/nginx.conf must carry the same location",
}


def test_every_block_names_its_language() -> None:
    untagged = [f"{doc}:{n}: {lang or '(none)'}" for doc, n, lang, _ in BLOCKS if lang not in LANGUAGES]
    assert not untagged, "blocks without a known language:\n" + "\n".join(untagged)
    assert {lang for _, _, lang, _ in BLOCKS} >= {"sh", "toml", "text"}


SHELL = [
    (doc, n, line) for doc, n, lang, body in BLOCKS if lang in ("sh", "console") for line in command_lines(lang, body)
]
OTHER = [c for c in SHELL if split(c[2]) is None]


def test_mchub_command_lines_are_checked_by_the_docs_commands_test() -> None:
    from tests.test_docs_commands import CASES

    checked = {(doc, tuple(split(text) or ())) for doc, kind, _, text in CASES if kind == "block"}
    unchecked = [
        f"{doc}:{n}: {line}"
        for doc, n, line in SHELL
        if split(line) is not None and (doc, tuple(split(line) or ())) not in checked
    ]
    assert not unchecked, "\n".join(unchecked)
    assert len(SHELL) - len(OTHER) > 50


@pytest.mark.parametrize(("doc", "number", "line"), OTHER, ids=[f"{c[0]}:{c[1]}" for c in OTHER])
def test_other_command_lines_are_listed_as_not_run_with_a_reason(doc: str, number: int, line: str) -> None:
    command = line.split("  #", 1)[0].strip()
    rules = [(why, check) for pattern, why, check in NOT_RUN if re.search(pattern, command)]
    assert len(rules) == 1, f"{doc}:{number}: {command!r} is neither run by a test nor listed in NOT_RUN"
    problem = rules[0][1](command)
    assert problem is None, f"{doc}:{number}: {command}: {problem}"


def test_every_not_run_rule_is_still_needed() -> None:
    used = {
        pattern
        for pattern, _, _ in NOT_RUN
        for _, _, line in OTHER
        if re.search(pattern, line.split("  #", 1)[0].strip())
    }
    assert used == {pattern for pattern, _, _ in NOT_RUN}


def test_toml_blocks_are_all_loaded_by_the_config_test() -> None:
    from tests.test_docs_config import BLOCKS as LOADED

    toml = [(doc, n) for doc, n, lang, _ in BLOCKS if lang == "toml"]
    assert sorted(toml) == sorted((doc, n) for doc, n, _ in LOADED)


@pytest.mark.parametrize(("doc", "number", "body"), [(d, n, b) for d, n, lang, b in BLOCKS if lang == "json"])
def test_json_blocks_parse(doc: str, number: int, body: list[str]) -> None:
    text = "\n".join(body)
    doc_ = json.loads(text)
    if "measurements" in doc_:  # an MQTT device message: the device codec takes it
        from drivers.mqtt.codec import decode_message

        assert decode_message(text.encode()).device_id == doc_["device_id"]


def test_systemd_unit_blocks_parse_and_run_a_real_command() -> None:
    units = [(doc, n, body) for doc, n, lang, body in BLOCKS if lang == "ini"]
    assert units
    for doc, n, body in units:
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.read_string("\n".join(body))
        argv = split("mchub " + unit["Service"]["ExecStart"].split("/mchub ", 1)[1])
        assert argv is not None and parse_error(argv) is None, f"{doc}:{n}: {parse_error(argv or [])}"


def test_python_blocks_compile() -> None:
    for doc, n, lang, body in BLOCKS:
        if lang == "python":
            compile("\n".join(body), f"{doc}:{n}", "exec")


def test_blocks_not_run_say_why_and_match_the_shipped_file() -> None:
    for doc, n, lang, body in BLOCKS:
        if lang in NOT_RUN_BLOCKS:
            location = next(line for line in body if line.startswith("location "))
            shipped = (ROOT / "deploy" / "cloud" / "nginx.conf").read_text(encoding="utf-8")
            assert location in shipped, f"{doc}:{n}: {location!r} is not in deploy/cloud/nginx.conf"


def test_text_blocks_hold_no_command() -> None:
    hidden = [
        f"{doc}:{n}: {line}"
        for doc, n, lang, body in BLOCKS
        if lang == "text"
        for line in body
        if split(line.strip()) is not None
    ]
    assert not hidden, "mchub commands in text blocks (tag them sh so a test parses them):\n" + "\n".join(hidden)
