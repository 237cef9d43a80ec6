"""LMS z-scores and the reference tables they read (pure; tables are data files in ``data/``).

The WHO growth standards (2006, under five) and reference (2007, five to nineteen) give,
for each sex and age (or length/height), the Box-Cox power L, median M and coefficient of
variation S (Cole & Green 1992). A measurement X has

    z = ((X / M) ** L - 1) / (L * S)          (z = ln(X / M) / S when L = 0)

For weight-based indicators (weight-for-length/height, BMI-for-age) WHO restricts the LMS
curve to -3..+3 and extends it linearly beyond ("SD23 adjustment", WHO Child Growth
Standards: Methods and development, 2006, ch. 7 "Computation of centiles and z-scores").
"""

from __future__ import annotations

import itertools
import math
from array import array
from dataclasses import dataclass
from functools import cache
from importlib import resources

from protocol.errors import ReferenceTableError


@dataclass(frozen=True, slots=True)
class Lms:
    l: float  # noqa: E741 - the parameter's published name
    m: float
    s: float

    def value_at(self, z: float) -> float:
        """The measurement that sits at ``z`` on this curve (no SD23 extension)."""
        if abs(self.l) < 1e-10:
            return self.m * math.exp(self.s * z)
        return float(self.m * (1 + self.l * self.s * z) ** (1 / self.l))

    def z(self, x: float) -> float:
        """Plain LMS z-score of ``x``."""
        if abs(self.l) < 1e-10:
            return math.log(x / self.m) / self.s
        return float(((x / self.m) ** self.l - 1) / (self.l * self.s))

    def z_adjusted(self, x: float) -> float:
        """z-score with WHO's SD23 extension beyond +-3 (weight-based indicators)."""
        z = self.z(x)
        if z > 3:
            sd3, sd2 = self.value_at(3), self.value_at(2)
            return 3 + (x - sd3) / (sd3 - sd2)
        if z < -3:
            sd3, sd2 = self.value_at(-3), self.value_at(-2)
            return -3 + (x - sd3) / (sd2 - sd3)
        return z


@dataclass(frozen=True)
class Table:
    """One sex's rows of one indicator, keyed by an evenly spaced index (days, months or 0.1 cm).

    ``values`` holds L, M, S of each row in turn, as C doubles: 24 bytes a row where an :class:`Lms`
    object with its three floats took ~120 (the hub loads every table it meets and keeps it: ~0.7 MB
    of growth in its first hours, issue 21)."""

    start: float
    step: float
    values: array[float]

    @property
    def count(self) -> int:
        return len(self.values) // 3

    @property
    def end(self) -> float:
        return self.start + self.step * (self.count - 1)

    def row(self, i: int) -> Lms:
        v = self.values
        return Lms(v[3 * i], v[3 * i + 1], v[3 * i + 2])

    def at(self, index: float) -> Lms | None:
        """The row at ``index``, interpolated linearly between rows; None outside the table."""
        pos = (index - self.start) / self.step
        if pos < -1e-9 or pos > self.count - 1 + 1e-9:
            return None
        lo = min(math.floor(pos + 1e-9), self.count - 1)
        frac = pos - lo
        a = self.row(lo)
        if frac < 1e-9 or lo + 1 >= self.count:
            return a
        b = self.row(lo + 1)
        return Lms(a.l + frac * (b.l - a.l), a.m + frac * (b.m - a.m), a.s + frac * (b.s - a.s))


@cache
def table(name: str, sex: str) -> Table:
    """Load ``data/<name>.tsv`` (columns sex, index, l, m, s; sex 1 = male, 2 = female) for ``sex`` M or F."""
    code = {"M": "1", "F": "2"}.get(sex)
    if code is None:
        raise ValueError(f"sex must be 'M' or 'F', not {sex!r}")
    try:
        text = resources.files("protocol.clinical").joinpath("data").joinpath(f"{name}.tsv").read_text(encoding="utf-8")
    except (FileNotFoundError, OSError) as exc:
        raise ReferenceTableError(f"reference table {name!r} is missing from this installation") from exc
    index: list[float] = []
    values: array[float] = array("d")
    for line in text.splitlines()[1:]:
        cells = line.split("\t")
        if len(cells) != 5 or cells[0] != code:
            continue
        index.append(float(cells[1]))
        values.extend((float(cells[2]), float(cells[3]), float(cells[4])))
    if len(index) < 2:
        raise ReferenceTableError(f"reference table {name!r} has no rows for sex {sex}")
    step = round(index[1] - index[0], 6)
    for a, b in itertools.pairwise(index):
        if abs(b - a - step) > 1e-6:
            raise ReferenceTableError(f"reference table {name!r} is not evenly spaced near {a}")
    return Table(index[0], step, values)
