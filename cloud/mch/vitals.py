"""Hub visits -> prenatal visits and child growth checks (pure: rows in, records out).

A visit is a station session with its readings. It becomes

* a :class:`~protocol.mch.records.PrenatalVisit` when the session carries the gestational
  age (``sessions.pregnant_weeks``, entered at the kiosk or by staff): the last blood
  pressure, classified with the pregnancy classes (>= 160/110 severe at any week, >= 140/90
  hypertension, before or from week 20; :func:`protocol.clinical.pregnancy.classify_bp`), the weight, and
  — kept beside the record, not uploaded — the weight gained since the first visit of
  the same pregnancy;
* a :class:`~protocol.mch.records.GrowthCheck` when the subject is a child under 6 at
  the visit and a weight or height was measured: WHO 2006 Z-scores and flags
  (:mod:`cloud.mch.growth`; lying length under 24 months by WHO convention).

Otherwise (an adult's ordinary visit) it is nobody's case.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from cloud.mch import growth
from cloud.mch.sources import CHINA
from cloud.mch.store import Assembled
from protocol.clinical import pregnancy, risk
from protocol.errors import ClinicalError
from protocol.mch.records import GrowthCheck, PrenatalVisit

HEIGHT, WEIGHT, SYSTOLIC, DIASTOLIC, HEAD = "8302-2", "29463-7", "8480-6", "8462-4", "9843-4"


@dataclass(frozen=True)
class Visit:
    """One session with what the assembler needs."""

    hub_id: str
    session_id: str
    site_id: str
    subject_id: int
    opened_ms: int
    pregnant_weeks: int | None
    sex: str
    birth_date: str | None
    readings: tuple[tuple[int, Any], ...]  #: (at_ms, observations JSON) in time order

    @property
    def day(self) -> dt.date:
        """Date of the visit (China time)."""
        return dt.datetime.fromtimestamp(self.opened_ms / 1000, tz=CHINA).date()

    def last(self) -> dict[str, float]:
        """The last value of each LOINC code measured in the visit."""
        values: dict[str, float] = {}
        for _, observations in sorted(self.readings, key=lambda r: r[0]):
            obs = msgspec.json.decode(observations) if isinstance(observations, (str, bytes)) else observations
            for o in obs if isinstance(obs, list) else []:
                if isinstance(o, Mapping) and isinstance(o.get("value"), (int, float)):
                    values[str(o.get("code"))] = float(o["value"])
        return values


def age_days(visit: Visit) -> int | None:
    """Age in days at the visit, or None when the birth date is unknown or unreadable."""
    try:
        return (visit.day - dt.date.fromisoformat(visit.birth_date or "")).days
    except ValueError:
        return None


def risk_grade(visit: Visit, first_weight: float | None, labs: Iterable[Mapping[str, Any]] = ()) -> risk.RiskGrade:
    """The five-colour grade on the day of ``visit``: age, the pregnancy's first BMI, the latest
    laboratory result of each code observed up to the end of that day (protocol.clinical.risk)."""
    days = age_days(visit)
    years = None
    if days is not None and visit.birth_date:
        born = dt.date.fromisoformat(visit.birth_date)
        years = visit.day.year - born.year - ((visit.day.month, visit.day.day) < (born.month, born.day))
    v = visit.last()
    height, weight = v.get(HEIGHT), first_weight if first_weight is not None else v.get(WEIGHT)
    bmi = round(weight / (height / 100) ** 2, 1) if height and weight and height > 50 else None
    end_of_day = dt.datetime.combine(visit.day + dt.timedelta(days=1), dt.time(), CHINA).timestamp() * 1000
    latest: dict[str, Mapping[str, Any]] = {}
    for r in sorted(labs, key=lambda r: r.get("observed_ms") or 0):
        if (r.get("observed_ms") or 0) < end_of_day:
            latest[str(r["loinc"])] = r
    return risk.grade(risk.facts_from(age_years=years, bmi=bmi, labs=latest.values()))


def prenatal(visit: Visit, first_weight: float | None, labs: Iterable[Mapping[str, Any]] = ()) -> Assembled | None:
    """The prenatal visit record of a session with a gestational age (None otherwise)."""
    if visit.pregnant_weeks is None:
        return None
    v = visit.last()
    sys_, dia, weight = v.get(SYSTOLIC), v.get(DIASTOLIC), v.get(WEIGHT)
    bp_class = None
    grade = risk_grade(visit, first_weight, labs)
    derived: dict[str, Any] = {}
    try:
        weeks = pregnancy.check_weeks(visit.pregnant_weeks)
    except ClinicalError as exc:
        weeks, derived["weeks_error"] = None, str(exc)
    if sys_ is not None and dia is not None and weeks is not None:
        bp_class = pregnancy.classify_bp(sys_, dia, weeks).bp_class.value
    if weight is not None and first_weight is not None:
        derived["weight_gain_kg"] = round(weight - first_weight, 1)
    case = PrenatalVisit(case_id=f"PN-{visit.hub_id}-{visit.session_id}", site_id=visit.site_id,
                         subject_id=str(visit.subject_id), screened_on=visit.day.isoformat(),
                         gestational_weeks=visit.pregnant_weeks, systolic=sys_, diastolic=dia, weight_kg=weight,
                         bp_class=bp_class, risk_colour=grade.colour.label, risk_purple=grade.purple,
                         risk_items=tuple(i.id for i in grade.items))
    return Assembled(case, derived, [f"visit:{visit.hub_id}/{visit.session_id}"])


def growth_check(visit: Visit) -> Assembled | None:
    """The child growth check of a session (None for adults and visits without weight or height)."""
    days = age_days(visit)
    v = visit.last()
    if days is None or not 0 <= days < 6 * 365 + 2 or (WEIGHT not in v and HEIGHT not in v):
        return None
    sex = visit.sex if visit.sex in ("1", "2") else None
    lying = days < 731
    fields: dict[str, Any] = {}
    derived: dict[str, Any] = {"age_days": days}
    if sex is not None and days <= 1856:
        try:
            g = growth.assess(sex=sex, age_days=days, weight_kg=v.get(WEIGHT), height_cm=v.get(HEIGHT),
                              measured_lying=lying)
        except growth.GrowthError as exc:
            derived["growth_error"] = str(exc)
        else:
            for key in ("wfa", "lhfa", "wflh", "bmi"):
                score = getattr(g, key)
                if score is not None:
                    fields[f"z_{key}"] = round(score.z, 2)
                    if score.implausible:
                        derived.setdefault("implausible", []).append(key)
            fields["findings"] = g.findings
    case = GrowthCheck(case_id=f"GR-{visit.hub_id}-{visit.session_id}", site_id=visit.site_id,
                       subject_id=str(visit.subject_id), screened_on=visit.day.isoformat(), sex=sex,  # type: ignore[arg-type]
                       birth_date=visit.birth_date, height_cm=v.get(HEIGHT), weight_kg=v.get(WEIGHT),
                       head_circumference_cm=v.get(HEAD), measured_lying=lying, **fields)
    return Assembled(case, derived, [f"visit:{visit.hub_id}/{visit.session_id}"])


def first_weights(visits: Iterable[Visit]) -> dict[str, float]:
    """Per session: the weight at the first visit of the same pregnancy (for weight gain).

    Two visits belong to one pregnancy when their estimated starts (visit date minus the
    gestational age) are within 8 weeks of each other.
    """
    out: dict[str, float] = {}
    pregnancy: list[tuple[dt.date, float | None]] = []  # (estimated start, first weight)
    for v in sorted((v for v in visits if v.pregnant_weeks is not None), key=lambda v: v.opened_ms):
        start = v.day - dt.timedelta(weeks=v.pregnant_weeks or 0)
        match = next((i for i, (s, _) in enumerate(pregnancy) if abs((s - start).days) <= 56), None)
        weight = v.last().get(WEIGHT)
        if match is None:
            pregnancy.append((start, weight))
        elif pregnancy[match][1] is None:
            pregnancy[match] = (pregnancy[match][0], weight)
        first = pregnancy[match][1] if match is not None else weight
        if first is not None:
            out[v.session_id] = first
    return out
