"""Children's blood pressure by sex, age and height, 3 to 17 years (pure, table-driven).

Reference: 范晖, 闫银坤, 米杰. 中国3~17岁儿童性别、年龄别和身高别血压参照标准. 中华高血压杂志
2017;25(5):428-435 — P50/P90/P95/P99 of systolic and diastolic pressure per sex, whole year of
age and height band (``data/china2017_child_bp.tsv``; see ``data/SOURCES.md``).

Classes (中国高血压防治指南 2018, 儿童与青少年高血压):
  * normal: both below P90;
  * high-normal: P90 <= value < P95, or from 12 years >= 120/80 while below P95;
  * stage 1 hypertension: P95 <= value < P99 + 5 mmHg;
  * stage 2 hypertension: value >= P99 + 5 mmHg.
Systolic and diastolic are judged apart; the higher class wins. Under 3 years there is no
class (the value is shown without a judgement); from 18 the adult rules apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from importlib import resources

from protocol.errors import ReferenceTableError
from protocol.model import Flag

SOURCE = "范晖等. 中国3~17岁儿童性别、年龄别和身高别血压参照标准. 中华高血压杂志 2017;25(5):428-435"
FIRST_AGE, LAST_AGE = 3, 17


class ChildBp(IntEnum):
    """Ordered: the higher of systolic and diastolic wins."""

    NORMAL = 0
    HIGH_NORMAL = 1
    STAGE_1 = 2
    STAGE_2 = 3

    @property
    def key(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Row:
    height_lower: int
    height_upper: int
    sbp: tuple[float, float, float, float]  #: P50, P90, P95, P99
    dbp: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class ChildBpResult:
    bp_class: ChildBp
    flag: Flag
    p90: tuple[float, float]  #: systolic, diastolic: the upper end of normal that applied
    p95: tuple[float, float]
    source: str = SOURCE


@cache
def _table() -> dict[tuple[str, int], tuple[Row, ...]]:
    text = resources.files("protocol.clinical").joinpath("data").joinpath("china2017_child_bp.tsv").read_text(
        encoding="utf-8")
    out: dict[tuple[str, int], list[Row]] = {}
    for line in text.splitlines()[1:]:
        c = line.split("\t")
        if len(c) != 12 or c[0] not in ("1", "2"):
            raise ReferenceTableError(f"children's BP table: malformed row {line!r}")
        sex = "M" if c[0] == "1" else "F"
        v = [float(x) for x in c[4:]]
        out.setdefault((sex, int(c[1])), []).append(
            Row(int(c[2]), int(c[3]), (v[0], v[1], v[2], v[3]), (v[4], v[5], v[6], v[7])))
    return {k: tuple(v) for k, v in out.items()}


def row_for(sex: str, age_years: int, height_cm: float) -> Row | None:
    """The table row for a child (height rounded half up to whole cm); None outside 3-17 years."""
    rows = _table().get((sex, age_years))
    if rows is None:
        return None
    h = int(height_cm + 0.5)
    return next((r for r in rows if r.height_lower <= h <= r.height_upper), None)


def _one(value: float, p: tuple[float, float, float, float], adult_cut: float, age_years: int) -> ChildBp:
    _, p90, p95, p99 = p
    if value >= p99 + 5:
        return ChildBp.STAGE_2
    if value >= p95:
        return ChildBp.STAGE_1
    if value >= p90 or (age_years >= 12 and value >= adult_cut):
        return ChildBp.HIGH_NORMAL
    return ChildBp.NORMAL


def classify(sex: str, age_years: int, height_cm: float, systolic: float, diastolic: float) -> ChildBpResult | None:
    """The class of one child's blood pressure; None when the table does not cover her (under 3, 18 or
    over, or no height)."""
    if not FIRST_AGE <= age_years <= LAST_AGE or height_cm <= 0:
        return None
    row = row_for(sex, age_years, height_cm)
    if row is None:
        return None
    cls = max(_one(systolic, row.sbp, 120, age_years), _one(diastolic, row.dbp, 80, age_years))
    flag: Flag = "HH" if cls is ChildBp.STAGE_2 else "H" if cls is ChildBp.STAGE_1 else "N"
    return ChildBpResult(cls, flag, (row.sbp[1], row.dbp[1]), (row.sbp[2], row.dbp[2]))
