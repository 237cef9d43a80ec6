"""How cloud.toml problems are worded: file, ``[section] key``, problem and fix.

The sections themselves are msgspec Structs (cloud/config/__init__.py, cloud/config/integration.py),
each key declared once with its type, default and bounds; :func:`protocol.settings.decode`
checks a file against them and :func:`config_error` words what it found.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import msgspec

from cloud.errors import ConfigError
from protocol.settings import SettingProblem, number_text, toml_value


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A cloud.toml section: an unknown key is refused (a misspelt one would otherwise be ignored)."""


#: the type names cloud.toml messages have always used
_EXPECTED = {"float": "int or float", "table": "dict", "table or list": "dict or list"}


def err(path: Path, where: str, problem: str, fix: str) -> ConfigError:
    return ConfigError(f"{path}: {where}: {problem}.\n  Fix: {fix}")


def positive(path: Path, where: str, value: float, hi: float | None = None) -> None:
    """A cross-key bound (e.g. per-source connections at most the total) in the range wording."""
    if value <= 0 or (hi is not None and value > hi):
        bound = f" and at most {hi:g}" if hi is not None else ""
        raise err(path, where, f"{value} is out of range", f"use a number above 0{bound}")


def resolve(base: Path, value: Path | None) -> Path | None:
    """A path of the file, relative to the file's directory."""
    return None if value is None else value if value.is_absolute() else base / value


def _suggest(word: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _example(p: SettingProblem) -> str:
    if p.example is not None:
        return toml_value(p.example)
    if p.default not in (None, "", ()):
        return toml_value(p.default)
    return {"bool": "true", "int": "1", "float": "1.0", "list": "[]", "table": "{}"}.get(p.expected, '"..."')


def config_error(path: Path, p: SettingProblem) -> ConfigError:
    """The message a cloud.toml user gets for ``p``."""
    section, name = str(p.key[0]), p.name
    where = f"[{section}] {name}" if len(p.key) > 1 else f"[{section}]"
    if p.kind == "unknown" and len(p.key) == 1:
        return err(path, where, "unknown section", f"{_suggest(section, p.known)}known sections: {', '.join(p.known)}")
    if p.kind == "unknown":
        return err(path, where, "unknown key", f"{_suggest(name, p.known)}known keys: {', '.join(p.known)}")
    if p.kind == "type" and len(p.key) == 1:
        return err(path, section, "must be a [section] table", f"write [{section}] on its own line")
    if p.kind == "type":
        expected = _EXPECTED.get(p.expected, p.expected)
        return err(path, where, f"{p.value!r} is a {type(p.value).__name__}, expected {expected}",
                   p.fix or f"write e.g. {name} = {_example(p)}")
    if p.kind == "range":
        low = "" if p.low is None else f" {'above' if p.low_open else 'at least'} {number_text(p.low)}"
        high = "" if p.high is None else f"{' and' if low else ''} at most {number_text(p.high)}"
        return err(path, where, f"{p.value} is out of range", p.fix or f"use a number{low}{high}")
    if p.kind == "choice":
        names = [toml_value(c) for c in p.choices]
        return err(path, where, f"{p.value!r} is not supported", "use " + " or ".join(
            [", ".join(names[:-1]), names[-1]] if len(names) > 1 else names))
    if p.kind == "missing":
        return err(path, where, "is missing", p.fix or f"add {name} = {_example(p)}")
    return err(path, where, p.detail or f"{p.value!r} is not valid", p.fix or "see docs/deployment.md")
