"""Children's heart rate by age, birth to 18 years (pure, table-driven).

Reference: Fleming S, Thompson M, Stevens R, et al. Normal ranges of heart rate and respiratory
rate in children from birth to 18 years of age: a systematic review of observational studies.
Lancet 2011;377:1011-18, table 2 (centiles of 143,346 children from 59 studies), shipped as
``data/fleming2011_heart_rate.tsv`` (see ``data/SOURCES.md``).

Classes: below the 1st centile "low", above the 99th "high", between them normal. The 1st-99th
centile band is the range shown and sent as OBX-7. The published ranges of resuscitation courses
(APLS, PALS) cross Fleming's median or lie beyond the 1st and 99th centiles, which is why the
band comes from the centile table and not from a course card.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cache
from importlib import resources

from protocol.errors import ReferenceTableError
from protocol.model import Flag

SOURCE = "Fleming S et al. Normal ranges of heart rate ... birth to 18 years. Lancet 2011;377:1011-18, table 2"
_DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True, slots=True)
class Band:
    from_months: int
    to_months: int  #: exclusive
    p1: float
    p50: float
    p99: float


@dataclass(frozen=True, slots=True)
class HeartRateResult:
    flag: Flag
    word: str  #: normal / high / low
    low: float  #: 1st centile
    high: float  #: 99th centile
    source: str = SOURCE


@cache
def _bands() -> tuple[Band, ...]:
    text = resources.files("protocol.clinical").joinpath("data").joinpath("fleming2011_heart_rate.tsv").read_text(
        encoding="utf-8")
    out = []
    for line in text.splitlines()[1:]:
        c = line.split("\t")
        if len(c) != 9:
            raise ReferenceTableError(f"heart-rate table: malformed row {line!r}")
        lo, hi, p1, p50, p99 = int(c[0]), int(c[1]), float(c[2]), float(c[5]), float(c[8])
        if not (lo < hi and p1 < p50 < p99):
            raise ReferenceTableError(f"heart-rate table: row out of order {line!r}")
        out.append(Band(lo, hi, p1, p50, p99))
    for before, after in itertools.pairwise(out):
        if before.to_months != after.from_months:
            raise ReferenceTableError(f"heart-rate table: gap at {before.to_months} months")
    return tuple(out)


def band_for(age_days: int) -> Band | None:
    """The age band of a child; None from 18 years (216 months) or for a negative age."""
    months = age_days / _DAYS_PER_MONTH
    return next((b for b in _bands() if b.from_months <= months < b.to_months), None)


def classify(age_days: int, beats_per_minute: float) -> HeartRateResult | None:
    """A child's resting heart rate against the 1st-99th centile band of her age; None from 18 years."""
    band = band_for(age_days)
    if band is None:
        return None
    if beats_per_minute > band.p99:
        return HeartRateResult("H", "high", band.p1, band.p99)
    if beats_per_minute < band.p1:
        return HeartRateResult("L", "low", band.p1, band.p99)
    return HeartRateResult("N", "normal", band.p1, band.p99)
