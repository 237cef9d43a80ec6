"""The command line answers --help and --version for every subcommand, in Chinese and English."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from mchub import __version__
from mchub.cli import COMMANDS, build_parser, main
from tests.webui.test_glossary import REFUSED


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert __version__ in capsys.readouterr().out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip()


# --- bilingual help ------------------------------------------------------------------------

_CJK = re.compile(r"[\u4e00-\u9fff]")
_LATIN = re.compile(r"[A-Za-z]{3,}")
#: commands whose help another branch is rewriting now; remove an entry once it says it in both languages
_PENDING: set[str] = set()
#: command groups whose every option and argument is explained in both languages too (all of them)
_EVERY_OPTION = ("mchub",)


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[tuple[str, argparse.ArgumentParser,
                                                                                  dict[str, str]]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, child in action.choices.items():
                yield " ".join((*path, name)), child, {name: helps.get(name, "")}
                yield from _walk(child, (*path, name))


def test_every_command_and_subcommand_has_help_in_chinese_and_english(capsys: pytest.CaptureFixture[str]) -> None:
    """`mchub X ... --help` for every command of edge, cloud, provision, sim, demo, bench and decode."""
    parser = build_parser()
    seen, missing = 0, []
    for path, child, listed in _walk(parser, ("mchub",)):
        if path in _PENDING:
            continue
        seen += 1
        description = child.description or ""
        with pytest.raises(SystemExit) as exit_:
            main([*path.split()[1:], "--help"])
        shown = capsys.readouterr().out
        assert exit_.value.code == 0 and shown == child.format_help()
        if not (_CJK.search(description) and _LATIN.search(description) and _CJK.search(shown)):
            missing.append(f"{path}: description {description[:60]!r}")
        missing += [f"{path}: {word} — docs/glossary.md says {use}" for word, use in REFUSED.items() if word in shown]
        if path.startswith(_EVERY_OPTION):
            missing += [f"{path} {'/'.join(a.option_strings) or a.dest}: {a.help[:50]!r}" for a in child._actions
                        if a.help and a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)
                        and not (_CJK.search(a.help) and _LATIN.search(a.help))]
        for name, line in listed.items():
            if line and not (_CJK.search(line) and _LATIN.search(line)):
                missing.append(f"{path}: the line for {name} in its parent's list: {line[:60]!r}")
    missing += [f"mchub {'/'.join(a.option_strings)}: {a.help!r}" for a in parser._actions
                if a.help and not (_CJK.search(a.help) and _LATIN.search(a.help))]
    assert not missing, "help without both languages:\n" + "\n".join(missing)
    assert seen > 70  # every command group was walked
    assert {p.split()[1] for p, _, _ in _walk(parser, ("mchub",))} >= {"edge", "cloud", "provision", "sim", "demo",
                                                                       "bench"}
