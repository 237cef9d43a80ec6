"""Configuration tables decoded into msgspec Structs: one declaration per key, one error shape.

A configuration section is a frozen ``msgspec.Struct``; each field declares its key once,
with its type, its default and its bounds (``Annotated[int, Meta(ge=0, le=65535)]``),
optionally an example (``Meta(examples=[...])``) and a fix text (``Meta(description=...)``).
:func:`decode` turns a parsed TOML table into that Struct, or raises :class:`SettingError`
whose :class:`SettingProblem` says where (the key path), what kind of problem, and what the
declaration allows, so each config loader (``edge/config.py``, ``cloud/config/__init__.py``) can word
the message its users already get: file, key and fix. Cross-key rules (a maximum at least
the minimum, a URL's scheme) stay in the loaders, after decoding.

Pure: no I/O. ``pathlib.Path`` fields are accepted as text (an empty string means "not
set" and leaves the default); resolving them against the file's directory is the loader's
job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import msgspec
from msgspec import inspect as mi

from protocol.errors import ProtocolError

S = TypeVar("S", bound=msgspec.Struct)
Kind = Literal["type", "range", "choice", "unknown", "missing", "invalid"]
Key = tuple[str | int, ...]

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<at>.*)`)?$", re.S)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_NAMED = re.compile(r"`([^`]*)`")
#: msgspec's type names as a user writes them in TOML
_TYPE_NAMES = {"object": "table", "array": "list", "NoneType": "nothing"}


@dataclass(frozen=True)
class SettingProblem:
    """What is wrong with one key, and what its declaration allows."""

    key: Key  #: path from the decoded table: ("web", "port"), ("stations", 0, "id")
    kind: Kind
    value: Any  #: the value found (None when missing)
    expected: str = ""  #: "int", "float", "bool", "str", "table", "list" (kind "type")
    low: float | None = None  #: the lowest value allowed (``ge``, or ``gt`` with ``low_open``)
    low_open: bool = False
    high: float | None = None
    high_open: bool = False
    choices: tuple[Any, ...] = ()  #: the allowed values (kind "choice")
    known: tuple[str, ...] = ()  #: the keys the enclosing table allows (kind "unknown")
    default: Any = None  #: the declared default (None: none)
    example: Any = None  #: ``Meta(examples=[...])[0]``, or None
    fix: str = ""  #: ``Meta(description=...)``, or ""
    detail: str = ""  #: msgspec's own wording (kind "invalid")

    @property
    def name(self) -> str:
        """The last named key of the path (``port`` for ``stations[0].devices[1].port``)."""
        return next((str(k) for k in reversed(self.key) if isinstance(k, str)), "")


class SettingError(ProtocolError):
    """A configuration table does not match its declaration; ``problem`` says how."""

    def __init__(self, problem: SettingProblem) -> None:
        super().__init__(f"{'.'.join(map(str, problem.key)) or '(top level)'}: {problem.kind}")
        self.problem = problem


def decode(table: Mapping[str, Any], kind: type[S]) -> S:
    """``table`` as a ``kind`` Struct; raises :class:`SettingError`."""
    try:
        return msgspec.convert(_drop_unset_paths(table, kind), kind, strict=True, dec_hook=_path_hook)
    except msgspec.ValidationError as exc:
        raise SettingError(_problem(str(exc), table, kind)) from None


def _path_hook(kind: type, value: Any) -> Any:
    if kind is Path:
        if not isinstance(value, str):
            raise TypeError(f"Expected `str`, got `{type(value).__name__}`")
        return Path(value)
    raise TypeError(f"no conversion to {kind.__name__}")  # msgspec reports it as this key's error


def _drop_unset_paths(table: Mapping[str, Any], kind: type[msgspec.Struct]) -> Any:
    """An empty string for a ``Path | None`` key means "not set" (nested Structs too)."""
    if not isinstance(table, Mapping):
        return table
    info = mi.type_info(kind)
    if not isinstance(info, mi.StructType):
        return table
    out = dict(table)
    for f in info.fields:
        t = _plain(f.type)
        if f.name not in out:
            continue
        if isinstance(t, mi.CustomType) and t.cls is Path and out[f.name] == "" and not f.required:
            del out[f.name]
        elif isinstance(t, mi.StructType):
            out[f.name] = _drop_unset_paths(out[f.name], t.cls)
        elif isinstance(t, mi.ListType | mi.VarTupleType) and isinstance(_plain(t.item_type), mi.StructType):
            item = _plain(t.item_type)
            assert isinstance(item, mi.StructType)
            if isinstance(out[f.name], list):
                out[f.name] = [_drop_unset_paths(x, item.cls) for x in out[f.name]]
    return out


def _plain(t: mi.Type) -> mi.Type:
    """``t`` without its Meta and without ``| None``."""
    while True:
        if isinstance(t, mi.Metadata):
            t = t.type
        elif isinstance(t, mi.UnionType):
            rest = [x for x in t.types if not isinstance(x, mi.NoneType)]
            if len(rest) != 1:
                return t
            t = rest[0]
        else:
            return t


def _extra(t: mi.Type) -> dict[str, Any]:
    """The ``Meta(examples=..., description=...)`` of a field, wherever it sits in the type."""
    if isinstance(t, mi.Metadata):
        return {**_extra(t.type), **(t.extra_json_schema or {})}
    if isinstance(t, mi.UnionType):
        return {k: v for x in t.types for k, v in _extra(x).items()}
    return {}


def _steps(at: str | None) -> Key:
    return tuple(name if name else int(index) for name, index in _STEP.findall(at or ""))


def _walk(kind: type[msgspec.Struct], key: Key) -> tuple[mi.Field | None, mi.StructType | None, bool]:
    """The field at ``key``, the Struct that holds it, and whether ``key`` ends inside the field (a list
    item): then the field's default, example and fix still apply. None where the path leaves the declaration."""
    t: mi.Type = mi.type_info(kind)
    field: mi.Field | None = None
    holder: mi.StructType | None = None
    inside = False
    for step in key:
        t = _plain(t)
        if isinstance(step, int):
            if not isinstance(t, mi.ListType | mi.VarTupleType):
                return None, None, False
            t, inside = t.item_type, True
            continue
        if not isinstance(t, mi.StructType):
            return None, None, False
        holder, inside = t, False
        field = next((f for f in t.fields if f.name == step), None)
        if field is None:
            return None, holder, False
        t = field.type
    return field, holder, inside


def _value(table: Any, key: Key) -> Any:
    for step in key:
        try:
            table = table[step]
        except (KeyError, IndexError, TypeError):
            return None
    return table


def _problem(text: str, table: Mapping[str, Any], kind: type[msgspec.Struct]) -> SettingProblem:
    m = _AT.match(text)
    assert m is not None  # the pattern matches any text
    msg, key = m["msg"], _steps(m["at"])
    named = _NAMED.findall(msg)
    if msg.startswith(("Object contains unknown field", "Object missing required field")):
        key = (*key, named[0])
    field, holder, inside = _walk(kind, key)
    known = tuple(f.name for f in holder.fields) if holder is not None else ()
    base: dict[str, Any] = {"key": key, "value": _value(table, key), "known": known}
    if field is not None:
        extra = _extra(field.type)
        base["default"] = None if field.default is msgspec.NODEFAULT else field.default
        base["example"] = (extra.get("examples") or [None])[0]
        base["fix"] = extra.get("description", "")
        plain = _plain(field.type)
        if isinstance(plain, mi.LiteralType) and holder is not None:
            base["choices"] = _literal_values(holder.cls, field.name)
        base["expected"] = _expected(plain)
        base.update(_bounds(field.type))
    if msg.startswith("Object contains unknown field"):
        return SettingProblem(kind="unknown", **base)
    if msg.startswith("Object missing required field"):
        return SettingProblem(kind="missing", **base)
    if msg.startswith("Invalid enum value"):
        return SettingProblem(kind="choice", **base)
    if msg.startswith("Expected") and ", got" in msg:
        if field is None or inside:  # msgspec names the type of the item
            base["expected"] = _TYPE_NAMES.get(named[0], named[0])
        return SettingProblem(kind="type", **base)
    if msg.startswith("Expected") and any(op in msg for op in ("<", ">")):
        return SettingProblem(kind="range", **base)
    return SettingProblem(kind="invalid", detail=msg, **base)


def _literal_values(cls: type[msgspec.Struct], name: str) -> tuple[Any, ...]:
    """A Literal field's values in the order they are declared (type_info sorts them)."""
    annotation = next(f.type for f in msgspec.structs.fields(cls) if f.name == name)
    while get_origin(annotation) is not Literal:
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    return get_args(annotation)


def _expected(t: mi.Type) -> str:
    names: dict[type[mi.Type], str] = {
        mi.IntType: "int", mi.FloatType: "float", mi.BoolType: "bool", mi.StrType: "str",
        mi.StructType: "table", mi.DictType: "table", mi.ListType: "list", mi.VarTupleType: "list",
        mi.CustomType: "str",
    }
    if isinstance(t, mi.LiteralType):
        return type(t.values[0]).__name__
    if isinstance(t, mi.UnionType):
        return " or ".join(_expected(_plain(x)) for x in t.types if not isinstance(x, mi.NoneType))
    return names.get(type(t), "value")


def _bounds(t: mi.Type) -> dict[str, Any]:
    t = _plain(t)
    if not isinstance(t, mi.IntType | mi.FloatType):
        return {}
    out: dict[str, Any] = {}
    if t.ge is not None or t.gt is not None:
        out["low"], out["low_open"] = (t.ge, False) if t.ge is not None else (t.gt, True)
    if t.le is not None or t.lt is not None:
        out["high"], out["high_open"] = (t.le, False) if t.le is not None else (t.lt, True)
    return out


def dotted(key: Key) -> str:
    """A key path as a person writes it: ``stations[0].devices[1].port``."""
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in key).lstrip(".") or "(top level)"


def toml_value(value: Any) -> str:
    """``value`` written as TOML (for "write it like ``key = ...``" hints)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return '"..."'


def number_text(x: float) -> str:
    """A bound as a person writes it: 1000000, 0.1 (never 1e+06)."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
