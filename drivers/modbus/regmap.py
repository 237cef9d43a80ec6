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
    unit = "cm"                  # default: the code's unit
    code = "8302-2"              # LOINC (see protocol.codes)

Each key is declared once, below, as a field of a frozen msgspec Struct (type, default,
bounds, fix text); :func:`parse_register_map` decodes the device table into
:class:`RegisterMap` with :func:`drivers.options.device_options` and then checks the rules
across keys (a known code and a unit convertible to its unit, the acknowledgement a
sequence needs, registers that overlap, one read of at most 125 registers). Every problem
is a :class:`~drivers.errors.ConfigError` naming the key and the fix:
``device 'hw-1'.registers[0].address: -1 is not an integer in 0..65535; fix: write address = 3 (...)``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from drivers.options import device_options, option_error
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

_ADDRESS_FIX = "write address = {} (register numbers count from 0, up to 65535)"
Address = Annotated[int, Meta(ge=0, le=0xFFFF)]


class _Table(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A nested table of the map: a misspelt key is refused, not ignored."""


class Counter(_Table, frozen=True, kw_only=True):
    """``[sequence]`` (and the address part of ``[ready]``): a register that is not an observation."""

    address: Annotated[Address, Meta(description=_ADDRESS_FIX.format(1))]
    type: Literal["u16", "u32"] = "u16"
    word_order: WordOrder = "big"  #: for u32: "big" = high word first

    @property
    def width(self) -> int:
        """Number of 16-bit registers the counter occupies."""
        return WIDTH[self.type]


class Ready(Counter, frozen=True, kw_only=True):
    """``[ready]``: the 'measurement ready' register and how the hub acknowledges a stored measurement."""

    address: Annotated[Address, Meta(description=_ADDRESS_FIX.format(0))]
    ack: AckMode = "clear"  #: "clear": write 0 here | "echo": write the sequence to ack_address | "none"
    #: where "echo" writes the sequence value (required then, ignored otherwise)
    ack_address: Annotated[Address, Meta(examples=[2])] | None = None


class Field(_Table, frozen=True, kw_only=True):
    """One ``[[registers]]`` entry: a numeric register (or register pair) holding an observation."""

    address: Annotated[Address, Meta(description=_ADDRESS_FIX.format(3))]
    code: Annotated[str, Meta(description="use one of " + ", ".join(sorted(CODES)))]  #: LOINC
    type: RegisterType = "u16"
    word_order: WordOrder = "big"  #: 32-bit types: "big" = high word first
    #: value = raw * scale + offset
    scale: Annotated[float, Meta(ge=-1e6, le=1e6, examples=[0.1])] = 1.0
    offset: Annotated[float, Meta(ge=-1e9, le=1e9, examples=[0.0])] = 0.0
    #: the unit the station reports in (converted to canonical on decode); None: the code's unit
    unit: Annotated[str, Meta(examples=["cm"])] | None = None
    name: str | None = None  #: a label for people reading the configuration

    @property
    def width(self) -> int:
        """Number of 16-bit registers the field occupies."""
        return WIDTH[self.type]

    @property
    def reported_unit(self) -> str:
        """``unit``, or the canonical unit of ``code``."""
        return self.unit if self.unit is not None else CODES[self.code].unit


class RegisterMap(msgspec.Struct, frozen=True, kw_only=True, dict=True):
    """The map's keys of a device table (the connection keys, in the same table, are the
    driver's; the hub's ``id``/``driver`` are ignored). ``start``/``count`` is the one block
    the driver reads."""

    registers: Annotated[
        tuple[Field, ...],
        Meta(min_length=1, description=("add at least one [[registers]] entry with address, type, unit and code")),
    ]
    ready: Annotated[Ready, Meta(description="add [ready] with the address of the 'measurement ready' register")]
    sequence: Counter | None = None  #: a counter the station bumps per measurement
    table: Table = "holding"
    reading_kind: ReadingKind = "generic"

    @property
    def fields(self) -> tuple[Field, ...]:
        """The observation registers."""
        return self.registers

    @property
    def kind(self) -> ReadingKind:
        """The kind of the measurements read."""
        return self.reading_kind

    @property
    def ack(self) -> AckMode:
        """How a stored measurement is acknowledged."""
        return self.ready.ack

    @property
    def ack_address(self) -> int:
        """Where the acknowledgement is written: ``ack_address`` for "echo", else the ready register."""
        r = self.ready
        return r.ack_address if r.ack == "echo" and r.ack_address is not None else r.address

    @functools.cached_property
    def _block(self) -> tuple[int, int]:  # computed once: decode runs on every poll
        spans = [(c.address, c.width) for c in (*self.registers, self.ready, self.sequence) if c is not None]
        start = min(a for a, _ in spans)
        return start, max(a + w for a, w in spans) - start

    @property
    def start(self) -> int:
        """First register address of the block that covers every configured register."""
        return self._block[0]

    @property
    def count(self) -> int:
        """Number of registers in that block."""
        return self._block[1]


def parse_register_map(config: Mapping[str, Any], device_id: str = "modbus") -> RegisterMap:
    """Decode a device's configuration table into its :class:`RegisterMap` and check the
    rules across keys; :class:`~drivers.errors.ConfigError` names ``device 'id'.key`` and the fix."""
    regmap = device_options(device_id, config, RegisterMap)
    for i, f in enumerate(regmap.registers):
        _check_field(device_id, f"registers[{i}]", f)
    ready, ack = regmap.ready, regmap.ready.ack
    if ack == "echo" and regmap.sequence is None:
        raise option_error(
            device_id,
            "ready.ack",
            "'echo' writes the sequence value back, but no [sequence] is configured",
            'add [sequence] or use ack = "clear"',
        )
    if ack == "echo" and ready.ack_address is None:
        raise option_error(
            device_id,
            "ready.ack_address",
            'missing (ack = "echo" writes the sequence there)',
            "add ack_address = 2 (the register the station reads the echo from)",
        )
    if ack == "none" and regmap.sequence is None:
        raise option_error(
            device_id,
            "ready.ack",
            "'none' needs a [sequence] register, or the same measurement would be emitted on every poll",
            'add [sequence] or use ack = "clear"',
        )
    if regmap.table == "input" and ack != "none":
        raise option_error(
            device_id,
            "ready.ack",
            "input registers cannot be written",
            'use ack = "none" with a [sequence] register, or table = "holding"',
        )
    _check_layout(device_id, regmap)
    return regmap


def _check_field(device_id: str, key: str, f: Field) -> None:
    if f.code not in CODES:
        raise option_error(
            device_id, f"{key}.code", f"{f.code!r} is not a known LOINC code", "use one of " + ", ".join(sorted(CODES))
        )
    try:
        to_canonical(f.code, 1.0, f.reported_unit)
    except UnitError as exc:
        raise option_error(
            device_id, f"{key}.unit", str(exc), f"use {CODES[f.code].unit!r} or a unit convertible to it"
        ) from None


def _check_layout(device_id: str, regmap: RegisterMap) -> None:
    used: dict[int, str] = {}
    named: list[tuple[str, int, int]] = [("ready", regmap.ready.address, regmap.ready.width)]
    if regmap.sequence is not None:
        named.append(("sequence", regmap.sequence.address, regmap.sequence.width))
    named += [(f"registers[{i}]", f.address, f.width) for i, f in enumerate(regmap.registers)]
    for name, address, width in named:
        for reg in range(address, address + width):
            if reg in used:
                raise option_error(
                    device_id,
                    f"{name}.address",
                    f"register {reg} is also used by {used[reg]}",
                    "give each value its own registers",
                )
            used[reg] = name
    if regmap.count > MAX_SPAN:
        raise option_error(
            device_id,
            "registers",
            f"the registers span {regmap.count} addresses from "
            f"{regmap.start}; one Modbus read covers at most {MAX_SPAN}",
            "move them closer together",
        )
