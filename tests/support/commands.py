"""`mchub ...` command lines as people copy them from docs and from the CLI's own output.

:func:`split` turns one shell line into argv (comments dropped, ``sudo``/``$`` prefixes
removed, ``<placeholder text>`` and ``$(...)`` taken as one value, cut at a pipe or a redirection); :func:`parse_error`
runs it through the real ``mchub`` argparse parser — strict ``parse_args``, so an unknown
flag, a missing required option, a wrong choice or a command group without its subcommand
is an error — and returns argparse's message, or None. :func:`reference_error` is the
lighter check for a command named in prose (`` `mchub edge export --since` ``): the
subcommands and every ``--flag`` exist, required arguments may be left out.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex

from mchub.cli import build_parser

_PARSER: argparse.ArgumentParser | None = None


def split(line: str) -> list[str] | None:
    """The argv after ``mchub`` of a shell line, or None when the line does not run mchub."""
    line = re.sub(r"<[^<>]*>|\$\([^()]*\)", "VALUE", line)
    try:
        words = shlex.split(line, comments=True)
    except ValueError:
        return None
    while words and words[0] in ("$", "sudo", "-u", "mchub-edge", "mchub-cloud"):
        words = words[2:] if words[0] == "-u" else words[1:]  # `sudo -u USER mchub ...`
    if not words or words[0] != "mchub":
        return None
    for i, word in enumerate(words):  # the command ends at a pipe, a redirection or a command separator
        if word in ("|", "||", "&&", ";", "&") or word.startswith((">", "<", "2>", "|")):
            return words[1:i]
    return words[1:]


def commands_in(text: str) -> list[list[str]]:
    """argv of every ``mchub ...`` a program printed, also within a line ("run: mchub ...",
    "`mchub cloud outbox list` shows ..."): each runs to a backtick, a closing parenthesis, Chinese
    punctuation or the end of its line."""
    found = []
    for line in text.splitlines():
        for at in re.finditer(r"(?<![\w/-])mchub (?=[a-z])", line):
            if argv := split(re.split(r"[`)），。；]", line[at.start():])[0].rstrip(".;")):
                found.append(argv)
    return found


def _leaf(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The parser of the subcommand argv names (following subcommand words only)."""
    for word in argv:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if subs and word in subs[0].choices:
            parser = subs[0].choices[word]
    return parser


def parse_error(argv: list[str]) -> str | None:
    """argparse's complaint about ``mchub ARGV``, or None when it parses to a runnable command."""
    global _PARSER
    _PARSER = _PARSER or build_parser()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            _PARSER.parse_args(argv)
        except SystemExit as exc:
            if exc.code not in (0, None):
                return err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {exc.code}"
            return None  # --help / --version
    leaf = _leaf(_PARSER, argv)
    if any(isinstance(a, argparse._SubParsersAction) for a in leaf._actions):
        return f"`{leaf.prog}` is a command group: it needs one of its subcommands"
    return None


def reference_error(argv: list[str]) -> str | None:
    """What is wrong with a command named in prose: an unknown subcommand or ``--flag``, or None."""
    global _PARSER
    _PARSER = _PARSER or build_parser()
    parser, skip = _PARSER, False
    for raw in argv:
        word = raw.strip("[]()")
        if skip:
            skip = False
            continue
        if word.startswith("--"):
            action = parser._option_string_actions.get(word.split("=", 1)[0])
            if action is None:
                return f"`{parser.prog}` has no option {word.split('=', 1)[0]}"
            skip = action.nargs != 0 and "=" not in word
            continue
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if word in ("...", "…"):
            return None  # "any subcommand / arguments"
        if subs and "|" in word:  # alternatives: idcard|station|bp
            wrong = [w for w in word.split("|") if w not in subs[0].choices]
            return f"`{parser.prog}` has no subcommand {wrong[0]!r}" if wrong else None
        if subs and word:
            if word not in subs[0].choices:
                return f"`{parser.prog}` has no subcommand {word!r}"
            parser = subs[0].choices[word]
        elif word and word not in ("…", "...") and not any(not a.option_strings for a in parser._actions):
            return f"`{parser.prog}` takes no positional argument, got {word!r}"
    return None
