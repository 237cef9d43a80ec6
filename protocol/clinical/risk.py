"""Five-colour pregnancy risk grading (绿/黄/橙/红/紫) from the 2017 national assessment table.

The machine-evaluable rows of 《孕产妇妊娠风险评估表》 (国卫办妇幼发〔2017〕35号 附件2) live in
``data/pregnancy_risk_2017.toml``, each with its colour, item number and published text.
:func:`grade` evaluates them against what is known about one woman and applies the table's
rule: the highest colour wins; purple (infectious disease) stands beside any other colour.
Staff add rows that need clinical judgement, or override the colour, with a reason (the
cloud audits both); the result always lists the items that produced it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from functools import cache
from importlib import resources
from typing import Any

from protocol.errors import ReferenceTableError


class Colour(IntEnum):
    """Ordered by risk; purple is reported separately (``RiskGrade.purple``)."""

    GREEN = 0
    YELLOW = 1
    ORANGE = 2
    RED = 3
    PURPLE = 9

    @property
    def label(self) -> str:
        return self.name.lower()


#: units the table's laboratory rows are written in, and factors from what LIS systems send
LAB_UNITS: dict[str, dict[str, float]] = {
    "g/L": {"g/L": 1.0, "g/dL": 10.0},
    "10*9/L": {"10*9/L": 1.0, "10*3/uL": 1.0, "10^9/L": 1.0, "x10E3/uL": 1.0},
}


@dataclass(frozen=True, slots=True)
class Item:
    id: str
    colour: Colour
    text: str
    age_ge: int | None = None
    age_le: int | None = None
    bmi_gt: float | None = None
    bmi_lt: float | None = None
    bmi_ge: float | None = None
    lab: str | None = None
    lab_unit: str | None = None
    lab_min: float | None = None
    lab_max: float | None = None
    icd10: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    source: str
    version: str
    items: tuple[Item, ...]

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items if i.id == item_id), None)


@cache
def table() -> Table:
    """The shipped table (2017), parsed and checked."""
    text = resources.files("protocol.clinical").joinpath("data").joinpath("pregnancy_risk_2017.toml").read_text(
        encoding="utf-8")
    doc = tomllib.loads(text)
    items: list[Item] = []
    for raw in doc.get("item", []):
        fields = dict(raw)
        try:
            fields["colour"] = Colour[str(fields["colour"]).upper()]
            fields["icd10"] = tuple(fields.get("icd10", ()))
            items.append(Item(**fields))
        except (KeyError, TypeError) as exc:
            raise ReferenceTableError(f"pregnancy risk table row {raw.get('id')!r} is malformed: {exc}") from exc
        if items[-1].lab is not None and items[-1].lab_unit not in LAB_UNITS:
            raise ReferenceTableError(f"pregnancy risk table row {items[-1].id!r}: unknown lab_unit")
    return Table(str(doc["source"]), str(doc["version"]), tuple(items))


@dataclass(frozen=True)
class Lab:
    """One laboratory result as the LIS reported it."""

    loinc: str
    value: float
    unit: str


@dataclass(frozen=True)
class Facts:
    """What the cloud knows about one pregnant woman on the day of assessment."""

    age_years: int | None = None
    bmi: float | None = None
    labs: tuple[Lab, ...] = ()  #: the latest result of each code
    diagnoses: tuple[str, ...] = ()  #: ICD-10 codes from the HIS
    confirmed: tuple[str, ...] = ()  #: item ids staff confirmed (rows a machine cannot judge)


@dataclass(frozen=True)
class RiskGrade:
    colour: Colour  #: green .. red
    purple: bool
    items: tuple[Item, ...] = field(default=())  #: the rows that matched, highest colour first
    source: str = ""

    @property
    def labels(self) -> list[str]:
        """e.g. ["orange", "purple"]: what a register shows."""
        return [self.colour.label] + (["purple"] if self.purple else [])


def _lab_value(lab: Lab, unit: str) -> float | None:
    factor = LAB_UNITS[unit].get(lab.unit)
    return None if factor is None else lab.value * factor


def matches(item: Item, facts: Facts) -> bool:
    """Whether one row of the table holds for these facts."""
    if item.id in facts.confirmed:
        return True
    age, bmi = facts.age_years, facts.bmi
    if age is not None and ((item.age_ge is not None and age >= item.age_ge)
                            or (item.age_le is not None and age <= item.age_le)):
        return True
    if bmi is not None and ((item.bmi_gt is not None and bmi > item.bmi_gt)
                            or (item.bmi_lt is not None and bmi < item.bmi_lt)
                            or (item.bmi_ge is not None and bmi >= item.bmi_ge)):
        return True
    if item.lab is not None and item.lab_unit is not None:
        for lab in facts.labs:
            value = _lab_value(lab, item.lab_unit) if lab.loinc == item.lab else None
            if value is not None and (item.lab_min is None or value >= item.lab_min) \
                    and (item.lab_max is None or value <= item.lab_max):
                return True
    return any(code.upper().startswith(prefix) for code in facts.diagnoses for prefix in item.icd10)


def grade(facts: Facts, t: Table | None = None) -> RiskGrade:
    """The colour for ``facts`` with the rows that produced it (green when none match)."""
    tab = t or table()
    hits = [i for i in tab.items if matches(i, facts)]
    ranked = sorted((i for i in hits if i.colour is not Colour.PURPLE), key=lambda i: -i.colour)
    colour = ranked[0].colour if ranked else Colour.GREEN
    purple = any(i.colour is Colour.PURPLE for i in hits)
    return RiskGrade(colour, purple, tuple(ranked + [i for i in hits if i.colour is Colour.PURPLE]), tab.source)


def facts_from(*, age_years: int | None, bmi: float | None, labs: Iterable[Mapping[str, Any]] = (),
               diagnoses: Iterable[str] = (), confirmed: Iterable[str] = ()) -> Facts:
    """Facts from plain rows (``{"loinc", "value", "unit"}``), skipping results that are not numbers."""
    parsed = tuple(Lab(str(r["loinc"]), float(r["value"]), str(r.get("unit") or ""))
                   for r in labs if isinstance(r.get("value"), int | float) and not isinstance(r.get("value"), bool))
    return Facts(age_years, bmi, parsed, tuple(diagnoses), tuple(confirmed))


def raised(before: tuple[str | None, bool], after: tuple[str | None, bool]) -> bool:
    """Whether a grade went up: a higher colour (none < green < yellow < orange < red), or purple newly set.
    Each side is (colour label or None, purple)."""
    order = {None: -1, "green": 0, "yellow": 1, "orange": 2, "red": 3}
    return (order.get(after[0], -1) > order.get(before[0], -1) and after[0] not in (None, "green")) \
        or (after[1] and not before[1])
