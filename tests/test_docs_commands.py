"""Every `mchub ...` command in the docs works with the CLI as it is.

* lines of shell blocks (```, ```sh, ```bash, ```console, and 4-space indented blocks) are parsed strictly by the real
  argparse parser: subcommands, flags, required arguments and choices as written; ``[...]``
  groups are optional parts of a synopsis (their flags must exist too);
* `` `mchub ...` `` code spans in prose, and commands named in a block's ``#`` comments, name
  commands: their subcommands and flags must exist;
* commands that need no server (``mchub decode``, ``mchub sim pacs make``, ``--help``) are run
  in a scratch directory and must exit 0.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.commands import parse_error, reference_error, split

ROOT = Path(__file__).resolve().parent.parent
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
_FENCE = re.compile(r"^\s*```\s*([\w-]*)\s*$")
_SPAN = re.compile(r"`(mchub(?: [^`]*)?)`")
_SHELL = ("", "sh", "bash", "console", "shell")
_IN_COMMENT = re.compile(r"(?<![\w/-])(mchub [a-z][^`#]*)")


def doc_commands(path: Path) -> Iterator[tuple[str, int, str]]:
    """("block" or "span", line number, command text) for every mchub command in one markdown file."""
    lang: str | None = None  # None: outside a fence
    pending = ""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fence = _FENCE.match(line)
        if fence:
            lang = fence.group(1) if lang is None else None
            continue
        if lang is None and line.startswith("    ") and split(line.strip()) is not None:
            yield "block", number, line.strip()  # an indented code block
        elif lang is None:
            for span in _SPAN.finditer(line):
                yield "span", number, span.group(1)
        elif lang in _SHELL:
            text = pending + line.strip()
            if text.endswith("\\"):
                pending = text[:-1] + " "
                continue
            pending = ""
            if split(text) is not None:
                yield "block", number, text
            if "#" in text:  # a command named in a comment: `# prints: mchub cloud hub add ...`
                for named in _IN_COMMENT.findall(text.split("#", 1)[1]):
                    yield "span", number, named.strip()


def _cases() -> list[tuple[str, str, int, str]]:
    return [(path.relative_to(ROOT).as_posix(), kind, number, text)
            for path in DOCS for kind, number, text in doc_commands(path)]


CASES = _cases()


def test_the_docs_hold_commands_to_check() -> None:
    kinds = {kind for _, kind, _, _ in CASES}
    assert len(CASES) > 100 and kinds == {"block", "span"}


@pytest.mark.parametrize(("doc", "kind", "number", "text"), CASES, ids=[f"{c[0]}:{c[2]}" for c in CASES])
def test_documented_command_parses(doc: str, kind: str, number: int, text: str) -> None:
    argv = split(text)
    assert argv is not None, f"{doc}:{number}: cannot split {text!r}"
    problem = reference_error(argv)
    if problem is None and kind == "block":
        synopsis = split(re.sub(r"\[[^\[\]]*\]", "", text))  # [--since SEQ] is optional in a synopsis
        assert synopsis is not None
        problem = parse_error(synopsis)
    assert problem is None, f"{doc}:{number}: {text}\n  {problem}"


def _runnable(argv: list[str]) -> bool:
    return argv[:1] == ["decode"] or argv[:3] == ["sim", "pacs", "make"] or "--help" in argv


RUNNABLE = [c for c in CASES if c[1] == "block" and _runnable(split(c[3]) or [])]


@pytest.mark.parametrize(("doc", "kind", "number", "text"), RUNNABLE, ids=[f"{c[0]}:{c[2]}" for c in RUNNABLE])
def test_documented_command_that_needs_no_server_runs(doc: str, kind: str, number: int, text: str,
                                                      tmp_path: Path) -> None:
    argv = split(text)
    assert argv is not None
    done = subprocess.run([sys.executable, "-m", "mchub", *argv], cwd=tmp_path, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120, check=False)
    assert done.returncode == 0, f"{doc}:{number}: {text}\n{done.stderr[-2000:]}"


def test_runnable_commands_were_found() -> None:
    assert {split(c[3])[0] for c in RUNNABLE} >= {"decode", "sim"}  # type: ignore[index]
