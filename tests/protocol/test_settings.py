"""protocol.settings: a table checked against its one declaration, problems described for the loaders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec
import pytest
from msgspec import Meta

from protocol.errors import ProtocolError
from protocol.settings import SettingError, SettingProblem, decode, dotted, number_text, toml_value


class Item(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(examples=["a"])]
    weight: Annotated[float, Meta(gt=0, le=10)] = 1.0


class Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    port: Annotated[int, Meta(ge=1, le=65535, description="pick a free port")] = 80
    mode: Literal["fast", "careful", "auto"] = "auto"
    file: Path | None = None
    items: tuple[Item, ...] = ()


def problem(raw: dict[str, object]) -> SettingProblem:
    with pytest.raises(SettingError) as err:
        decode(raw, Table)
    assert isinstance(err.value, ProtocolError)
    return err.value.problem


def test_a_valid_table_decodes_and_an_empty_path_means_unset() -> None:
    t = decode({"port": 8080, "file": "", "items": [{"name": "x", "weight": 2}]}, Table)
    assert t == Table(port=8080, items=(Item("x", 2.0),)) and t.file is None
    assert decode({"file": "a/b"}, Table).file == Path("a/b")


def test_each_kind_of_problem_names_the_key_and_what_the_declaration_allows() -> None:
    p = problem({"port": 0})
    assert (p.kind, p.key, p.value, p.low, p.high, p.fix) == ("range", ("port",), 0, 1, 65535, "pick a free port")
    p = problem({"port": "80"})
    assert (p.kind, p.expected, p.default) == ("type", "int", 80)
    p = problem({"mode": "slow"})
    assert (p.kind, p.choices) == ("choice", ("fast", "careful", "auto"))  # in declared order
    p = problem({"prot": 1})
    assert (p.kind, p.key, p.known) == ("unknown", ("prot",), ("port", "mode", "file", "items"))
    p = problem({"items": [{"weight": 2}]})
    assert (p.kind, p.key, p.name, p.example) == ("missing", ("items", 0, "name"), "name", "a")
    p = problem({"items": [{"name": "x", "weight": 0}]})
    assert (p.kind, p.key, p.low, p.low_open) == ("range", ("items", 0, "weight"), 0, True)
    p = problem({"file": 3})
    assert (p.kind, p.key, p.expected) == ("type", ("file",), "str")


def test_values_are_written_back_as_toml() -> None:
    assert [toml_value(v) for v in (True, 3, 1.5, "a\"b", ["x", 1], {"id": "r"})] == \
        ["true", "3", "1.5", '"a\\"b"', '["x", 1]', '{id = "r"}']
    assert (number_text(1_000_000), number_text(0.1), number_text(5.0)) == ("1000000", "0.1", "5")


def test_a_key_path_is_written_as_a_person_reads_it() -> None:
    assert dotted(("stations", 0, "devices", 1, "port")) == "stations[0].devices[1].port"
    assert dotted(problem({"items": [{"name": "a", "weight": 0}]}).key) == "items[0].weight"
    assert dotted(()) == "(top level)"
