"""The register map of a Modbus station, read from the hub configuration.

No vendor publishes a Modbus register map for clinic height/weight stations, so the map
is configuration. A ``[[station.device]]`` table of ``kind = "modbus-tcp"`` (or
``"modbus-rtu"``) carries it::

    table = "holding"            # or "input" (read-only stations; then ack must be "none")
    reading_kind = "height_weight"

    [station.device.ready]       # the 'measurement ready' register
    address = 0
    ack = "echo"                 # "clear": write 0 here | "echo": write the sequence
    ack_address = 2              #   value to ack_address | "none": never write
    [station.device.sequence]    # optional counter; the hub never emits one value twice
    address = 1
    type = "u16"

    [[station.device.registers]]
    address = 3
    type = "u16"                 # u16 i16 u32 i32 f32
    word_order = "big"           # 32-bit types: "big" = high word first, or "little"
    scale = 0.1                  # value = raw * scale + offset
    unit = "cm"
    code = "8302-2"              # LOINC (see protocol.codes)

:func:`parse_register_map` validates everything up front and raises
:class:`~drivers.errors.ConfigError` naming the key and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from drivers.errors import ConfigError
from protocol.codes import CODES
from protocol.errors import UnitError
from protocol.model import ReadingKind
from protocol.units import to_canonical

RegisterType = Literal["u16", "i16", "u32", "i32", "f32"]
WordOrder = Literal["big", "little"]
AckMode = Literal["clear", "echo", "none"]
Table = Literal["holding", "input"]

#: registers occupied by each type
WIDTH: dict[str, int] = {"u16": 1, "i16": 1, "u32": 2, "i32": 2, "f32": 2}
#: Modbus allows at most 125 registers in one read (function 03/04)
MAX_SPAN = 125


@dataclass(frozen=True, slots=True)
class Field:
    """One numeric register (or register pair) holding an observation."""

    address: int
    type: RegisterType
    code: str  #: LOINC
    unit: str  #: the unit the station reports in (converted to canonical on decode)
    scale: float = 1.0
    offset: float = 0.0
    word_order: WordOrder = "big"

    @property
    def width(self) -> int:
        """Number of 16-bit registers the field occupies."""
        return WIDTH[self.type]


@dataclass(frozen=True, slots=True)
class Counter:
    """A register that is not an observation: the ready flag or the sequence counter."""

    address: int
    type: RegisterType = "u16"
    word_order: WordOrder = "big"

    @property
    def width(self) -> int:
        """Number of 16-bit registers the counter occupies."""
        return WIDTH[self.type]


@dataclass(frozen=True, slots=True)
class RegisterMap:
    """A validated register map. ``start``/``count`` is the one block the driver reads."""

    fields: tuple[Field, ...]
    ready: Counter
    ack: AckMode
    ack_address: int
    sequence: Counter | None = None
    table: Table = "holding"
    kind: ReadingKind = "generic"

    #: first register address of the block that covers every configured register
    start: int = field(init=False)
    #: number of registers in that block (computed once: decode runs on every poll)
    count: int = field(init=False)

    def __post_init__(self) -> None:
        spans = [(f.address, f.width) for f in self.fields] + [(self.ready.address, self.ready.width)]
        if self.sequence is not None:
            spans.append((self.sequence.address, self.sequence.width))
        start = min(a for a, _ in spans)
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "count", max(a + w for a, w in spans) - start)


def _err(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def get_int(table: Mapping[str, Any], key: str, where: str, low: int, high: int, default: int | None = None) -> int:
    """``table[key]`` as an integer in ``low..high`` (or ``default``); ConfigError naming ``where.key``."""
    value = table.get(key, default)
    if value is None:
        raise _err(f"{where}.{key}", f"missing; fix: add {key} = <integer {low}..{high}>")
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _err(f"{where}.{key}", f"{value!r} is not an integer in {low}..{high}; fix: write {key} = <integer>"
                                     + (" (register numbers count from 0)" if "address" in key else ""))
    return value


def get_choice(table: Mapping[str, Any], key: str, where: str, allowed: tuple[str, ...], default: str) -> str:
    """``table[key]`` if it is one of ``allowed`` (or ``default``); ConfigError listing the choices."""
    value = table.get(key, default)
    if value not in allowed:
        raise _err(f"{where}.{key}", f"{value!r} is not allowed; fix: use one of {', '.join(allowed)}")
    return str(value)


def get_number(table: Mapping[str, Any], key: str, where: str, default: float) -> float:
    """``table[key]`` as a finite float (or ``default``); ConfigError naming ``where.key``."""
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _err(f"{where}.{key}", f"{value!r} is not a number; fix: write e.g. {key} = 0.1")
    return float(value)


def _table(config: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise _err(f"{where}.{key}", f"expected a table; fix: write [{where}.{key}] with address = ...")
    return value


def _counter(table: Mapping[str, Any], where: str) -> Counter:
    address = get_int(table, "address", where, 0, 0xFFFF)
    kind = get_choice(table, "type", where, ("u16", "u32"), "u16")
    order = get_choice(table, "word_order", where, get_args(WordOrder), "big")
    return Counter(address, kind, order)  # type: ignore[arg-type]


def _field(entry: Any, where: str) -> Field:
    if not isinstance(entry, Mapping):
        raise _err(where, "expected a table; fix: write [[registers]] entries with address, type, unit, code")
    known = {"address", "type", "word_order", "scale", "offset", "unit", "code", "name"}
    for key in entry:
        if key not in known:
            raise _err(f"{where}.{key}", f"unknown key; fix: remove it or use one of {', '.join(sorted(known))}")
    address = get_int(entry, "address", where, 0, 0xFFFF)
    kind = get_choice(entry, "type", where, get_args(RegisterType), "u16")
    order = get_choice(entry, "word_order", where, get_args(WordOrder), "big")
    code = entry.get("code")
    if code not in CODES:
        raise _err(f"{where}.code", f"{code!r} is not a known LOINC code; fix: use one of {', '.join(sorted(CODES))}")
    unit = entry.get("unit", CODES[code].unit)
    if not isinstance(unit, str):
        raise _err(f"{where}.unit", f"{unit!r} is not a unit; fix: write e.g. unit = \"{CODES[code].unit}\"")
    try:
        to_canonical(code, 1.0, unit)
    except UnitError as exc:
        raise _err(f"{where}.unit", f"{exc}; fix: use {CODES[code].unit!r} or a unit convertible to it") from None
    return Field(address, kind, code, unit, get_number(entry, "scale", where, 1.0),  # type: ignore[arg-type]
                 get_number(entry, "offset", where, 0.0), order)  # type: ignore[arg-type]


def parse_register_map(config: Mapping[str, Any], where: str = "device") -> RegisterMap:
    """Validate a device's configuration table and build its :class:`RegisterMap`.

    ``where`` prefixes every error message (the hub passes e.g. ``hub.toml: station[0].device[1]``).
    """
    entries = config.get("registers")
    if not isinstance(entries, list) or not entries:
        raise _err(f"{where}.registers", "missing or empty; fix: add at least one [[registers]] entry "
                                          "with address, type, unit and code")
    fields = tuple(_field(e, f"{where}.registers[{i}]") for i, e in enumerate(entries))
    ready_table = _table(config, "ready", where)
    if ready_table is None:
        raise _err(f"{where}.ready", "missing; fix: add [ready] with the address of the 'measurement ready' register")
    ready = _counter(ready_table, f"{where}.ready")
    seq_table = _table(config, "sequence", where)
    sequence = None if seq_table is None else _counter(seq_table, f"{where}.sequence")
    ack = get_choice(ready_table, "ack", f"{where}.ready", get_args(AckMode), "clear")
    ack_address = ready.address
    if ack == "echo":
        if sequence is None:
            raise _err(f"{where}.ready.ack", "'echo' writes the sequence value back, but no [sequence] is configured; "
                                             "fix: add [sequence] or use ack = \"clear\"")
        ack_address = get_int(ready_table, "ack_address", f"{where}.ready", 0, 0xFFFF)
    if ack == "none" and sequence is None:
        raise _err(f"{where}.ready.ack", "'none' needs a [sequence] register, or the same measurement would be "
                                         "emitted on every poll; fix: add [sequence] or use ack = \"clear\"")
    table = get_choice(config, "table", where, get_args(Table), "holding")
    if table == "input" and ack != "none":
        raise _err(f"{where}.ready.ack", "input registers cannot be written; fix: use ack = \"none\" "
                                         "with a [sequence] register, or table = \"holding\"")
    kind = get_choice(config, "reading_kind", where, get_args(ReadingKind), "generic")
    regmap = RegisterMap(fields, ready, ack, ack_address, sequence, table, kind)  # type: ignore[arg-type]
    _check_layout(regmap, where)
    return regmap


def _check_layout(regmap: RegisterMap, where: str) -> None:
    used: dict[int, str] = {}
    named: list[tuple[str, int, int]] = [("ready", regmap.ready.address, regmap.ready.width)]
    if regmap.sequence is not None:
        named.append(("sequence", regmap.sequence.address, regmap.sequence.width))
    named += [(f"registers[{i}]", f.address, f.width) for i, f in enumerate(regmap.fields)]
    for name, address, width in named:
        for reg in range(address, address + width):
            if reg in used:
                raise _err(f"{where}.{name}.address", f"register {reg} is also used by {used[reg]}; "
                                                      "fix: give each value its own registers")
            used[reg] = name
    if regmap.count > MAX_SPAN:
        raise _err(f"{where}.registers", f"the registers span {regmap.count} addresses from {regmap.start}; "
                                         f"one Modbus read covers at most {MAX_SPAN}; fix: move them closer together")
