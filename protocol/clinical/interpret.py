"""One visit's observations judged for the person measured: flag, class, range and its source.

Used by the hub (record flags, kiosk wording) and the cloud; every threshold comes from a
table cited in its module (docs/clinical.md lists them all):

* adult or unknown age: BP by protocol.flags (2018 or 2022 guideline), Chinese adult BMI
  classes, pulse 60-100, temperature by the site it was taken at (protocol.clinical.temperature);
* pregnant: the pregnancy BP classes (severe range urgent at any week), BMI not judged,
  weight gain against WS/T 801-2022 when the pre-pregnancy weight is known;
* child (< 18): weight for size as WHO z-scores (2006 under five, 2007 from five); blood
  pressure by sex, age and height from 3 to 17 years (the 2017 Chinese reference; under 3, or
  with no height measured, the value only); heart rate against the 1st-99th centile of her age
  (Fleming 2011); temperature by site, and a fever under 3 months is urgent (NICE NG143).

Where no paediatric table applies (BP under 3 years or without a height; an unknown age),
the value is shown without a judgement: a wrong adult flag frightens parents and teaches staff
to ignore flags.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import msgspec

from protocol import codes
from protocol.clinical import child_bp, growth, heart_rate, pregnancy, temperature
from protocol.clinical.patient import Group, Patient
from protocol.flags import GUIDELINE_2018, BpThresholds, classify_bmi, classify_bp, plausible
from protocol.model import Flag, Observation

SOURCE_ADULT_BP = "中国高血压防治指南 (2018 revision; thresholds configurable)"
SOURCE_ADULT_BMI = "WS/T 428-2013 成人体重判定"
SOURCE_PULSE = "adult resting pulse 60-100 /min (clinic convention)"
NO_CHILD_REFERENCE = "no paediatric reference loaded: value shown without a judgement"
_WORD: dict[str, str] = {"N": "normal", "H": "high", "HH": "very_high", "L": "low", "LL": "very_low",
                         "A": "implausible"}


@dataclass(frozen=True, slots=True)
class Interpretation:
    code: str
    flag: Flag | None
    klass: str | None  #: catalog key suffix, e.g. "bp.grade_1", "growth.wasting", "pregnancy.severe"
    group: Group
    low: float | None  #: the normal range that applied, in the observation's canonical unit
    high: float | None
    source: str
    urgent: bool = False  #: see a nurse now; the hub raises an alarm
    z: float | None = None


def interpret(observations: tuple[Observation, ...], patient: Patient | None = None, on: dt.date | None = None,
              bp: BpThresholds = GUIDELINE_2018, temperature_site: str = "unknown") -> dict[str, Interpretation]:
    """Judge every observation we have a rule for, keyed by LOINC code (others are left out).

    ``temperature_site`` is where a temperature was taken (:data:`protocol.clinical.temperature.SITES`;
    :func:`protocol.clinical.temperature.site_of` reads it from a reading's device status).
    """
    p = patient or Patient()
    day = on or dt.date.today()
    group = p.group(day)
    by_code = {o.code: o for o in observations if plausible(o)}
    out: dict[str, Interpretation] = {}

    def put(code: str, flag: Flag | None, klass: str | None, low: float | None, high: float | None, source: str,
            urgent: bool = False, z: float | None = None) -> None:
        out[code] = Interpretation(code, flag, klass, group, low, high, source, urgent, z)

    for o in observations:
        if not plausible(o):
            put(o.code, "A", "implausible", None, None, "protocol.codes plausible range")

    height, weight, bmi_obs = by_code.get(codes.HEIGHT), by_code.get(codes.WEIGHT), by_code.get(codes.BMI)
    sys_, dia = by_code.get(codes.SYSTOLIC), by_code.get(codes.DIASTOLIC)
    if sys_ is not None and dia is not None:
        if p.pregnant_weeks is not None:
            r = pregnancy.classify_bp(sys_.value, dia.value, p.pregnant_weeks)
            for code, high in ((codes.SYSTOLIC, 140.0), (codes.DIASTOLIC, 90.0)):
                put(code, r.flag, f"pregnancy.{r.bp_class.value}", None, high, r.source, r.urgent)
        elif group is Group.CHILD:
            years, size = p.age_years(day), height.value if height is not None else p.height_cm
            c = (child_bp.classify(p.sex, years, size, sys_.value, dia.value)
                 if p.sex is not None and years is not None and size else None)
            if c is None:  # under 3 years, or no height measured: the value without a judgement
                for code in (codes.SYSTOLIC, codes.DIASTOLIC):
                    put(code, None, "child.no_reference", None, None, NO_CHILD_REFERENCE)
            else:
                for code, i in ((codes.SYSTOLIC, 0), (codes.DIASTOLIC, 1)):
                    put(code, c.flag, f"child_bp.{c.bp_class.key}", None, c.p90[i], c.source)
        else:
            a = classify_bp(sys_.value, dia.value, bp)
            for code, high in ((codes.SYSTOLIC, bp.grade_1[0]), (codes.DIASTOLIC, bp.grade_1[1])):
                put(code, a.flag, f"bp.{a.bp_class.value}", None, high, SOURCE_ADULT_BP)

    age = p.age_days(day)
    if group is Group.CHILD and age is not None and p.sex is not None:
        if bmi_obs is not None:
            g = growth.bmi_for_age(p.sex, age, bmi_obs.value)
            if g is not None:
                put(codes.BMI, g.flag, f"growth.{g.growth_class.value}", g.normal_low, g.normal_high, g.source,
                    z=g.z)
        if weight is not None and height is not None:
            g = growth.weight_for_height(p.sex, age, weight.value, height.value)
            if g is not None:
                put(codes.WEIGHT, g.flag, f"growth.{g.growth_class.value}", g.normal_low, g.normal_high, g.source,
                    z=g.z)
    elif group is Group.CHILD:
        if bmi_obs is not None:
            put(codes.BMI, None, "child.no_reference", None, None, NO_CHILD_REFERENCE)
    elif p.pregnant_weeks is not None:
        if bmi_obs is not None:
            put(codes.BMI, None, "pregnancy.bmi_not_judged", None, None, pregnancy.SOURCE_GWG)
        if weight is not None and height is not None and p.pre_pregnancy_weight_kg:
            w = pregnancy.weight_gain(p.pre_pregnancy_weight_kg, height.value, weight.value, p.pregnant_weeks)
            put(codes.WEIGHT, w.flag, f"gain.{w.gain_class.value}",
                p.pre_pregnancy_weight_kg + w.expected[0], p.pre_pregnancy_weight_kg + w.expected[1], w.source)
    elif bmi_obs is not None:
        cls, flag = classify_bmi(bmi_obs.value)
        put(codes.BMI, flag, f"bmi.{cls.value}", 18.5, 23.9, SOURCE_ADULT_BMI)

    pulse = by_code.get(codes.PULSE)
    if pulse is not None:
        hr = heart_rate.classify(age, pulse.value) if group is Group.CHILD and age is not None else None
        if hr is not None:
            put(codes.PULSE, hr.flag, "pulse." + hr.word, hr.low, hr.high, hr.source)
        elif group is Group.CHILD:
            put(codes.PULSE, None, "child.no_reference", None, None, NO_CHILD_REFERENCE)
        else:
            pflag: Flag = "H" if pulse.value > 100 else "L" if pulse.value < 60 else "N"
            put(codes.PULSE, pflag, "pulse." + _WORD[pflag], 60, 100, SOURCE_PULSE)

    temp = by_code.get(codes.TEMPERATURE)
    if temp is not None:
        t = temperature.classify(temp.value, temperature_site, age if group is Group.CHILD else None)
        put(codes.TEMPERATURE, t.flag, "temperature." + t.word, t.low, t.high, t.source, t.urgent)
    return out


def flag_observations(observations: tuple[Observation, ...], patient: Patient | None = None,
                      on: dt.date | None = None, bp: BpThresholds = GUIDELINE_2018,
                      temperature_site: str = "unknown") -> tuple[Observation, ...]:
    """The observations with ``flag`` set by :func:`interpret` for this patient.

    A value with a rule gets that rule's flag (None where the rule gives no judgement, e.g. a
    child's pulse); a value without a rule keeps the flag its device sent.
    """
    judged = interpret(observations, patient, on, bp, temperature_site)
    out = []
    for o in observations:
        j = judged.get(o.code)
        flag = o.flag if j is None else j.flag
        out.append(o if flag == o.flag else msgspec.structs.replace(o, flag=flag))
    return tuple(out)
