"""Who was measured: the context every interpretation needs (pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from protocol import idnum
from protocol.clinical.pregnancy import check_weeks
from protocol.errors import IdNumberError

ADULT_YEARS = 18
#: China Standard Time: a patient's age and the day a rule applies are counted in it (hubs and the cloud alike)
CHINA = dt.timezone(dt.timedelta(hours=8))


class Group(StrEnum):
    """Which references apply; the kiosk words its advice for each group."""

    CHILD = "child"  #: under 18 on the day of measurement
    PREGNANT = "pregnant"  #: pregnancy weeks known (an adult; a pregnant girl stays CHILD for growth)
    ADULT = "adult"
    UNKNOWN = "unknown"  #: no birth date: adult references, said so on the record


@dataclass(frozen=True, slots=True)
class Patient:
    birth_date: dt.date | None = None
    sex: str | None = None  #: "M" or "F"; None when unknown
    pregnant_weeks: int | None = None
    pre_pregnancy_weight_kg: float | None = None
    height_cm: float | None = None  #: measured in this visit (children's BP tables need it)

    def __post_init__(self) -> None:
        check_weeks(self.pregnant_weeks)
        if self.sex not in (None, "M", "F"):
            raise ValueError(f"sex must be 'M', 'F' or None, not {self.sex!r}")

    @classmethod
    def from_subject(cls, national_id: str | None = None, birth_date: str | None = None, sex: str | None = None,
                     pregnant_weeks: int | None = None, pre_pregnancy_weight_kg: float | None = None) -> Patient:
        """Context from what a station knows: the ID number wins; else a YYYY-MM-DD birth date and a
        GB/T 2261.1 sex code ("1" male, "2" female)."""
        born: dt.date | None = None
        code = sex
        if national_id:
            try:
                born = idnum.birth_date(national_id)
                code = idnum.sex(national_id)
            except IdNumberError:
                born = None
        if born is None and birth_date:
            try:
                born = dt.date.fromisoformat(birth_date)
            except ValueError:
                born = None
        return cls(birth_date=born, sex={"1": "M", "2": "F"}.get(code or ""),
                   pregnant_weeks=pregnant_weeks, pre_pregnancy_weight_kg=pre_pregnancy_weight_kg)

    def age_days(self, on: dt.date) -> int | None:
        if self.birth_date is None or on < self.birth_date:
            return None
        return (on - self.birth_date).days

    def age_years(self, on: dt.date) -> int | None:
        b = self.birth_date
        if b is None or on < b:
            return None
        return on.year - b.year - ((on.month, on.day) < (b.month, b.day))

    def group(self, on: dt.date) -> Group:
        years = self.age_years(on)
        if years is not None and years < ADULT_YEARS:
            return Group.CHILD
        if self.pregnant_weeks is not None:
            return Group.PREGNANT
        return Group.ADULT if years is not None else Group.UNKNOWN
