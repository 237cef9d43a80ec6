"""Contract: every observation code, unit and flag a shipped driver can emit is one the cloud stores.

Issue 17 finding 2: the BLE body-composition codec emitted ``mchub-impedance`` (and six more
local codes) that the cloud's validator did not know, so every such reading was refused.
Nothing tied the two together. The codes are collected from the drivers' own source (every
code a driver passes to ``Observation``, ``to_canonical`` or ``observation``: a ``codes.X``
constant, a module constant or a literal; drivers that take codes from their configuration,
Modbus and MQTT, accept only :data:`protocol.codes.CODES`), not from a list kept here; then
every code, in every unit a driver converts from, with every flag, goes through the same
path as a batch (encode, decode, :func:`cloud.intake.validate.check_columns`).
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import get_args

import pytest

import drivers
from cloud.intake.validate import check_columns
from protocol import codes
from protocol.batch import decode_columns, encode_records
from protocol.model import Flag, Observation, Reading
from protocol.units import _CONVERT, ALIASES, to_canonical

DRIVERS = Path(drivers.__file__).resolve().parent
_CALLS = {"Observation", "to_canonical", "observation"}


def _module_constants(tree: ast.Module) -> dict[str, object]:
    out: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            value = node.value
            if isinstance(value, ast.Constant):
                out[node.targets[0].id] = value.value
            elif isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name) and value.value.id == "codes":
                out[node.targets[0].id] = getattr(codes, value.attr)
    return out


def emitted_codes() -> dict[str, set[str]]:
    """code -> the driver files that emit it (explicit units of direct ``Observation(...)`` as ``code@unit``)."""
    found: dict[str, set[str]] = {}
    for path in sorted(DRIVERS.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = _module_constants(tree)
        where = str(path.relative_to(DRIVERS.parent))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "codes" \
                    and node.attr.isupper():
                found.setdefault(getattr(codes, node.attr), set()).add(where)
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in _CALLS):
                continue
            args = {kw.arg: kw.value for kw in node.keywords}
            code_node = args.get("code") or args.get("loinc") or (node.args[0] if node.args else None)
            code = None
            if isinstance(code_node, ast.Constant):
                code = code_node.value
            elif isinstance(code_node, ast.Name) and code_node.id in constants:
                code = constants[code_node.id]
            if isinstance(code, str):
                found.setdefault(code, set()).add(where)
                unit = args.get("unit")
                if isinstance(unit, ast.Constant):
                    found.setdefault(f"{code}@{unit.value}", set()).add(where)
    for name, value in vars(codes).items():  # local ``mchub-*`` constants a driver re-exports
        if isinstance(value, str) and value.startswith("mchub-") and name.isupper():
            found.setdefault(value, set())
    return found


def test_the_scan_sees_the_body_composition_codes_that_were_refused() -> None:
    found = emitted_codes()
    assert "drivers/ble/body_composition.py" in found[codes.IMPEDANCE]
    assert found[codes.SYSTOLIC] >= {"drivers/ble/bp.py", "drivers/stations/accutorr.py"}
    assert len({c for c in found if "@" not in c}) >= 15


def test_every_code_a_driver_emits_is_a_known_code_in_its_canonical_unit() -> None:
    unknown, wrong_unit = [], []
    for key, where in emitted_codes().items():
        code, _, unit = key.partition("@")
        if code not in codes.CODES:
            if not unit:
                    unknown.append(f"{code} ({', '.join(sorted(where))})")
        elif unit and unit != codes.CODES[code].unit:
            wrong_unit.append(f"{code} in {unit!r}, canonical {codes.CODES[code].unit!r} ({', '.join(sorted(where))})")
    assert not unknown, f"drivers emit codes the cloud refuses; add them to protocol/codes.py: {unknown}"
    assert not wrong_unit, wrong_unit


def _variants() -> list[Observation]:
    """Every code of CODES in every unit a driver may read it in (converted), with every flag."""
    out = []
    for code, info in codes.CODES.items():
        units = {info.unit} | {src for (src, dst) in _CONVERT if dst == info.unit} | {
            alias for alias, target in ALIASES.items() if target == info.unit}
        for unit, flag in itertools.product(sorted(units), (None, *get_args(Flag))):
            value = (info.low + info.high) / 2
            out.append(to_canonical(code, value, unit, flag))
    return out


@pytest.mark.parametrize("kind", ["blood_pressure", "body_composition", "height_weight", "generic"])
def test_the_cloud_validator_accepts_every_code_unit_and_flag(kind: str) -> None:
    observations = _variants()
    records = [Reading(hub_id="H", epoch=1, seq=i + 1, at=1_700_000_000_000 + i, device_id="d", station_id="s",
                       kind=kind, observations=(o,))  # type: ignore[arg-type]
               for i, o in enumerate(observations)]
    cols = decode_columns(encode_records(records), hub_id="H", epoch=1, first_seq=1)
    kept, refused = check_columns(cols)
    assert refused == [], [(r.message) for r in refused[:5]]
    assert len(kept.readings) == len(observations)


def test_a_body_composition_measurement_with_every_field_is_stored_si_and_imperial() -> None:
    from drivers.ble.body_composition import decode_body_composition

    for frame in ("feaf 1234 e707 0206 121c00 2a 2345 3456 4567 5678 6789 789a 89ab 9abc abcd",
                  "ffaf 1234 e707 0206 121c00 2a 2345 3456 4567 5678 6789 789a 89ab 9abc abcd"):
        m = decode_body_composition(bytes.fromhex(frame))
        assert codes.IMPEDANCE in {o.code for o in m.observations}
        record = Reading(hub_id="H", epoch=1, seq=1, at=1_700_000_000_000, device_id="scale", station_id="s",
                         kind=m.kind, observations=m.observations, raw=m.raw)
        _, refused = check_columns(decode_columns(encode_records([record]), hub_id="H", epoch=1, first_seq=1))
        assert refused == []
