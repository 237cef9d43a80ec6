"""A device's own options (keys of its ``[[stations.devices]]`` table) decoded into a Struct.

Each driver declares its options once, as a frozen :mod:`protocol.settings` Struct (type,
default, bounds, example and fix text per key); :func:`device_options` decodes the device
table into it (keys the Struct does not declare, like ``id`` and ``driver``, are the hub's
and ignored) and turns a problem into a :class:`~drivers.errors.ConfigError` naming the
device, the key and the fix::

    device 'bp-3'.port: 0 is not an integer in 1..65535; fix: write port = 1883
    device 'hw-1'.registers[0].colour: unknown key; fix: remove it or use one of address, code, ...

Nested tables (a Modbus register map's ``[ready]`` and ``[[registers]]``) are Structs too,
named by their path. Cross-key rules (a maximum at least the minimum, registers that
overlap) stay in the driver, after decoding; they word their errors with :func:`option_error`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec

from drivers.errors import ConfigError
from protocol.settings import SettingError, SettingProblem, decode, dotted, number_text, toml_value

S = TypeVar("S", bound=msgspec.Struct)

_NOUNS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a text",
          "table": "a table", "list": "a list"}


def where(device_id: str, key: str) -> str:
    """How a driver's message names one key of a device: ``device 'bp-3'.port``."""
    return f"device {device_id!r}.{key}"


def option_error(device_id: str, key: str, problem: str, fix: str) -> ConfigError:
    """``device 'x'.key: problem; fix: fix``."""
    return ConfigError(f"{where(device_id, key)}: {problem}; fix: {fix}")


def device_options(device_id: str, table: Mapping[str, Any], kind: type[S],
                   error: Callable[[str, str, str, str], ConfigError] = option_error) -> S:
    """``table`` decoded as ``kind``; ``error(device_id, key, problem, fix)`` (by default
    :func:`option_error`) when a key does not match its declaration."""
    try:
        return decode(table, kind)
    except SettingError as exc:
        p = exc.problem
        raise error(device_id, dotted(p.key), problem_text(p), fix_text(p)) from None


def allowed(p: SettingProblem) -> str:
    """What the declaration takes, in words: "an integer in 1..65535", "a number > 0"."""
    nouns = [_NOUNS.get(e, e) for e in p.expected.split(" or ")] if p.expected else ["a value"]
    noun = " or ".join(dict.fromkeys(nouns))
    if p.low is not None and p.high is not None and not (p.low_open or p.high_open):
        return f"{noun} in {number_text(p.low)}..{number_text(p.high)}"
    bounds = []
    if p.low is not None:
        bounds.append(f"{'>' if p.low_open else '>='} {number_text(p.low)}")
    if p.high is not None:
        bounds.append(f"{'<' if p.high_open else '<='} {number_text(p.high)}")
    return " ".join([noun, " and ".join(bounds)]) if bounds else noun


def problem_text(p: SettingProblem) -> str:
    """What is wrong with the value: "0 is not an integer in 1..65535"."""
    if p.kind == "missing":
        return "missing"
    if p.kind == "unknown":
        return "unknown key"
    if p.kind == "choice":
        return f"{p.value!r} is not allowed"
    if p.kind == "range" and p.expected == "str":  # a length bound: every text option is one
        return f"{p.value!r} is not a non-empty text"
    if p.kind == "range" and p.expected == "list":  # a length bound: every list option is one
        return "empty"
    if p.kind in ("type", "range"):
        return f"{p.value!r} is not {allowed(p)}"
    return f"{p.value!r} is not valid"


def fix_text(p: SettingProblem) -> str:
    """The declared fix, or one written from the declaration."""
    if p.fix:
        return p.fix
    if p.kind == "choice":
        return "use one of " + ", ".join(map(str, p.choices))
    if p.kind == "unknown":
        return "remove it or use one of " + ", ".join(sorted(p.known))
    example = p.example if p.example is not None else p.default
    if example is None:
        example = p.low if p.low is not None else "..."
    return f"write {p.name} = {toml_value(example)}"
