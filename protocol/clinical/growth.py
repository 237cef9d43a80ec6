"""Children's weight for their size as WHO z-scores, and the classes WHO uses for them.

Under five (age < 1,826 days), WHO Child Growth Standards 2006:
  * weight-for-length (under 731 days) or weight-for-height (from 731 days), and
  * BMI-for-age by day;
  a station measures standing height, so below 731 days 0.7 cm is added to make it a
  recumbent length (WHO 2006 Methods and development, ch. 7: "length ~ height + 0.7 cm").
  Classes (WHO, Training course on child growth assessment, 2008, module C
  "Interpreting growth indicators"): z < -3 severely wasted, z < -2 wasted, z > +1 possible
  risk of overweight, z > +2 overweight, z > +3 obese.
Five to eighteen, WHO Growth Reference 2007 (de Onis et al., Bull WHO 2007;85:660-7):
  BMI-for-age by month, interpolated between months as WHO's anthroplus does.
  Classes (WHO growth reference 5-19 years, BMI-for-age interpretation): z < -3 severe
  thinness, z < -2 thinness, z > +1 overweight, z > +2 obesity.
The tables are in ``data/`` (see ``data/SOURCES.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from protocol.clinical.lms import table
from protocol.model import Flag

DAYS_PER_MONTH = 365.25 / 12  #: WHO's month (anthro and anthroplus)
UNDER_FIVE_DAYS = 1826  #: WHO 2006 tables end at day 1,826 (five years)
LENGTH_BEFORE_DAYS = 731  #: recumbent length before two years, standing height after
HEIGHT_TO_LENGTH_CM = 0.7

SOURCE_WHO2006 = "WHO Child Growth Standards 2006 (weight-for-length/height, BMI-for-age)"
SOURCE_WHO2007 = "WHO Growth Reference 2007, 5-19 years (BMI-for-age)"


class GrowthClass(StrEnum):
    """Stable identifiers; the catalogs word them (child.growth.<value>)."""

    SEVERE_WASTING = "severe_wasting"
    WASTING = "wasting"
    NORMAL = "normal"
    RISK_OF_OVERWEIGHT = "risk_of_overweight"
    OVERWEIGHT = "overweight"
    OBESE = "obese"
    SEVERE_THINNESS = "severe_thinness"
    THINNESS = "thinness"


@dataclass(frozen=True, slots=True)
class GrowthResult:
    indicator: str  #: "wfl", "wfh", "bmi_for_age"
    z: float
    growth_class: GrowthClass
    flag: Flag
    normal_low: float  #: the measurement at z = -2 (the low end of normal), same unit as the input
    normal_high: float  #: the measurement at the class's upper normal bound (+1 under five and over)
    source: str


#: (below, above) cut-offs in z of each age group: classes below -3 / -2, then above each upper bound
#: in descending order; anything else is normal
_Cuts = tuple[tuple[GrowthClass, GrowthClass], tuple[tuple[int, GrowthClass, Flag], ...]]
_UNDER_FIVE: _Cuts = ((GrowthClass.SEVERE_WASTING, GrowthClass.WASTING),
                      ((3, GrowthClass.OBESE, "H"), (2, GrowthClass.OVERWEIGHT, "H"),
                       (1, GrowthClass.RISK_OF_OVERWEIGHT, "N")))
_SCHOOL_AGE: _Cuts = ((GrowthClass.SEVERE_THINNESS, GrowthClass.THINNESS),
                      ((2, GrowthClass.OBESE, "H"), (1, GrowthClass.OVERWEIGHT, "H")))


def _classify(z: float, cuts: _Cuts) -> tuple[GrowthClass, Flag]:
    (severe, low), highs = cuts
    if z < -3:
        return severe, "LL"
    if z < -2:
        return low, "L"
    for bound, cls, flag in highs:
        if z > bound:
            return cls, flag
    return GrowthClass.NORMAL, "N"


def weight_for_height(sex: str, age_days: int, weight_kg: float, height_cm: float) -> GrowthResult | None:
    """Weight-for-length (< 731 days) or -height, under five; None outside the WHO tables."""
    if not 0 <= age_days < UNDER_FIVE_DAYS or weight_kg <= 0:
        return None
    if age_days < LENGTH_BEFORE_DAYS:
        name, indicator, size = "who2006_weight_for_length", "wfl", height_cm + HEIGHT_TO_LENGTH_CM
    else:
        name, indicator, size = "who2006_weight_for_height", "wfh", height_cm
    lms = table(name, sex).at(round(size, 1))
    if lms is None:
        return None
    z = lms.z_adjusted(weight_kg)
    cls, flag = _classify(z, _UNDER_FIVE)
    return GrowthResult(indicator, z, cls, flag, lms.value_at(-2), lms.value_at(2), SOURCE_WHO2006)


def bmi_for_age(sex: str, age_days: int, bmi: float) -> GrowthResult | None:
    """BMI-for-age z-score from birth to 18 years; None at 18 or over, or outside the tables."""
    if age_days < 0 or bmi <= 0:
        return None
    if age_days < UNDER_FIVE_DAYS:
        lms = table("who2006_bmi_for_age_days", sex).at(age_days)
        if lms is None:
            return None
        z = lms.z_adjusted(bmi)
        cls, flag = _classify(z, _UNDER_FIVE)
        return GrowthResult("bmi_for_age", z, cls, flag, lms.value_at(-2), lms.value_at(2), SOURCE_WHO2006)
    return bmi_for_age_months(sex, age_days / DAYS_PER_MONTH, bmi)


def bmi_for_age_months(sex: str, months: float, bmi: float) -> GrowthResult | None:
    """WHO 2007 BMI-for-age from 60 months up to (not including) 216 months (18 years)."""
    if not 0 < months < 216 or bmi <= 0:
        return None
    lms = table("who2007_bmi_for_age_months", sex).at(max(months, 60.0))
    if lms is None:
        return None
    z = lms.z_adjusted(bmi)
    cls, flag = _classify(z, _SCHOOL_AGE)
    return GrowthResult("bmi_for_age", z, cls, flag, lms.value_at(-2), lms.value_at(1), SOURCE_WHO2007)
