"""A register map from configuration: every mistake is named by its key, with the fix."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from drivers.errors import ConfigError
from drivers.modbus.example import EXAMPLE_CONFIG, EXAMPLE_MAP
from drivers.modbus.regmap import parse_register_map


def config(**changes: Any) -> dict[str, Any]:
    """The example map with ``changes``; a change to None leaves the key out (TOML has no null)."""
    out = copy.deepcopy(EXAMPLE_CONFIG)
    out.update(changes)
    return {k: v for k, v in out.items() if v is not None}


def test_example_map_reads_one_block_from_0_to_6() -> None:
    assert (EXAMPLE_MAP.start, EXAMPLE_MAP.count) == (0, 7)
    assert EXAMPLE_MAP.ack == "echo" and EXAMPLE_MAP.ack_address == 2
    assert [f.code for f in EXAMPLE_MAP.fields] == ["8302-2", "29463-7", "39156-5"]


@pytest.mark.parametrize(
    ("change", "key", "hint"),
    [
        ({"registers": []}, "registers", "add at least one"),
        (
            {"registers": [{"address": 3, "type": "u64", "code": "8302-2"}]},
            "registers[0].type",
            "u16, i16, u32, i32, f32",
        ),
        ({"registers": [{"address": 3, "code": "1234-5"}]}, "registers[0].code", "8302-2"),
        ({"registers": [{"address": 3, "code": "8302-2", "unit": "kg"}]}, "registers[0].unit", "'cm'"),
        ({"registers": [{"address": -1, "code": "8302-2"}]}, "registers[0].address", "count from 0"),
        ({"registers": [{"address": 3, "code": "8302-2", "scale": "x"}]}, "registers[0].scale", "scale = 0.1"),
        ({"registers": [{"address": 3, "code": "8302-2", "colour": 1}]}, "registers[0].colour", "remove it"),
        ({"registers": [{"address": 3}]}, "registers[0].code", "8302-2"),
        ({"registers": {"address": 3, "code": "8302-2"}}, "registers", "[[registers]]"),
        ({"ready": {"address": 0, "ack": "clear", "flag": 1}}, "ready.flag", "ack_address"),
        ({"sequence": {"address": 1, "type": "f32"}}, "sequence.type", "u16, u32"),
        ({"registers": [{"address": 1, "code": "8302-2"}]}, "registers[0].address", "also used by sequence"),
        (
            {"registers": [{"address": 3, "code": "8302-2"}, {"address": 200, "code": "29463-7"}]},
            "registers",
            "at most 125",
        ),
        ({"ready": None}, "ready", "'measurement ready'"),
        ({"ready": {"address": 0, "ack": "echo"}}, "ready.ack_address", "ack_address"),
        ({"ready": {"address": 0, "ack": "sometimes"}}, "ready.ack", "clear, echo, none"),
        ({"sequence": None}, "ready.ack", "add [sequence]"),
        ({"table": "input"}, "ready.ack", "input registers cannot be written"),
        ({"reading_kind": "mood"}, "reading_kind", "height_weight"),
    ],
)
def test_configuration_errors_name_the_key_and_the_fix(change: dict[str, Any], key: str, hint: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_register_map(config(**change), "hw-1")
    message = str(err.value)
    assert message.startswith(f"device 'hw-1'.{key}:"), message
    assert hint in message and "fix:" in message


def test_a_read_only_station_with_a_sequence_needs_no_acknowledgement() -> None:
    regmap = parse_register_map(config(table="input", ready={"address": 0, "ack": "none"}))
    assert regmap.table == "input" and regmap.ack == "none"


def test_clear_acknowledgement_writes_the_ready_register() -> None:
    regmap = parse_register_map(config(ready={"address": 0}, sequence=None))
    assert regmap.ack == "clear" and regmap.ack_address == 0 and regmap.sequence is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"registers": [{"address": "3", "code": "8302-2"}]},
            "device 'hw-1'.registers[0].address: '3' is not an integer in 0..65535; "
            "fix: write address = 3 (register numbers count from 0, up to 65535)",
        ),
        (
            {"registers": [{"address": 70000, "code": "8302-2"}]},
            "device 'hw-1'.registers[0].address: 70000 is not an integer in 0..65535; "
            "fix: write address = 3 (register numbers count from 0, up to 65535)",
        ),
        (
            {"registers": [{"address": 3, "code": "8302-2", "scale": True}]},
            "device 'hw-1'.registers[0].scale: True is not a number in -1000000..1000000; fix: write scale = 0.1",
        ),
        (
            {"registers": [{"address": 3, "code": "8302-2", "offset": float("inf")}]},
            "device 'hw-1'.registers[0].offset: inf is not a number in -1000000000..1000000000; "
            "fix: write offset = 0.0",
        ),
        (
            {"ready": "0"},
            "device 'hw-1'.ready: '0' is not a table; "
            "fix: add [ready] with the address of the 'measurement ready' register",
        ),
        (
            {"ready": {"address": 0, "ack": "echo", "ack_address": -2}},
            "device 'hw-1'.ready.ack_address: -2 is not an integer in 0..65535; fix: write ack_address = 2",
        ),
        (
            {"sequence": {"address": 1, "type": "u16", "word_order": 1}},
            "device 'hw-1'.sequence.word_order: 1 is not a text; fix: write word_order = \"big\"",
        ),
    ],
)
def test_a_wrong_type_or_range_says_what_the_key_takes(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_register_map(config(**change), "hw-1")
    assert str(err.value) == message


def test_the_code_gives_the_unit_when_none_is_written() -> None:
    regmap = parse_register_map(config(registers=[{"address": 3, "code": "29463-7"}]))
    assert regmap.fields[0].unit is None and regmap.fields[0].reported_unit == "kg"


def test_an_acknowledgement_address_matters_only_for_echo() -> None:
    regmap = parse_register_map(config(ready={"address": 0, "ack": "clear", "ack_address": 2}))
    assert regmap.ack_address == 0
