"""Validation of MCH case records: field errors, warnings, and what is still missing.

* :func:`validate` returns :class:`FieldError` items. ``severity="error"`` blocks a record
  from being queued for upload (value not in its value set, impossible date, a
  consistency rule broken such as "abnormal cytology requires a colposcopy decision");
  ``"warning"`` is shown but does not block (age outside the programme's 35-64).
* :func:`missing` lists the fields a case still needs before it is complete (a result
  that will arrive later: histology after an abnormal colposcopy, pathology after a
  suspicious BI-RADS). Every message exists in zh-CN and English.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import msgspec

from protocol.mch import valuesets as vs
from protocol.mch.records import BreastCase, Case, CervicalCase, GrowthCheck, PrenatalVisit

SCREENING_BIRADS = frozenset(vs.BIRADS) - {"6"}


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    """One problem with one field."""

    field: str
    rule: str  #: stable id, e.g. "value_set", "required", "colposcopy_after_abnormal_cytology"
    zh: str
    en: str
    severity: Literal["error", "warning"] = "error"


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def _common(case: Case, today: dt.date) -> list[FieldError]:
    errors = [
        FieldError(field=f, rule="required", zh=f"{f} 为必填项", en=f"{f} is required")
        for f in ("case_id", "site_id", "subject_id") if not getattr(case, f)
    ]
    screened = _date(case.screened_on)
    if screened is None or screened > today:
        errors.append(FieldError(field="screened_on", rule="date", zh="筛查日期无效或晚于今天",
                                 en="screening date is not a valid date up to today"))
    if case.version < 1:
        errors.append(FieldError(field="version", rule="range", zh="版本号从1开始", en="version starts at 1"))
    return errors


def _value_sets(case: Case) -> list[FieldError]:
    errors = []
    for field, value_set in vs.VALUE_SETS.items():
        value = getattr(case, field, None)
        allowed = SCREENING_BIRADS if field.endswith("birads") else value_set
        if value is not None and value not in allowed:
            errors.append(FieldError(field=field, rule="value_set", zh=f"{field} 的取值 {value!r} 不在值域内",
                                     en=f"{field} value {value!r} is not in its value set"))
    return errors


def _age_warning(age: int | None) -> list[FieldError]:
    if age is not None and not 35 <= age <= 64:
        return [FieldError(field="age_years", rule="programme_age", severity="warning",
                           zh="年龄不在35-64岁筛查范围内", en="age is outside the 35-64 screening programme")]
    return []


def _cervical(c: CervicalCase) -> list[FieldError]:
    errors = _age_warning(c.age_years)
    primary = [v for v in (c.hpv, c.tbs, c.pap_class, c.via_vili) if v not in (None, "not_done")]
    if not primary:
        errors.append(FieldError(field="hpv", rule="primary_test", zh="至少需要一项初筛结果（HPV、细胞学或VIA/VILI）",
                                 en="at least one primary screening result is required (HPV, cytology or VIA/VILI)"))
    if (c.tbs or c.pap_class) and not c.sampling:
        errors.append(FieldError(field="sampling", rule="sampling_with_cytology", zh="有细胞学结果时须填写取材方式",
                                 en="a cytology result needs its sampling method"))
    abnormal = c.tbs in vs.ABNORMAL_TBS or c.pap_class in vs.ABNORMAL_PAP
    if abnormal and c.colposcopy is None:
        errors.append(FieldError(field="colposcopy", rule="colposcopy_after_abnormal_cytology",
                                 zh="细胞学异常者须有阴道镜检查决定（检查结果或“未做”）",
                                 en="abnormal cytology requires a colposcopy decision (a result or 'not done')"))
    if c.hpv in vs.HPV_16_18 and c.colposcopy is None:
        errors.append(FieldError(field="colposcopy", rule="colposcopy_after_hpv16_18",
                                 zh="HPV16/18阳性者须有阴道镜检查决定",
                                 en="HPV 16/18 positive requires a colposcopy decision"))
    if c.colposcopy == "abnormal" and not c.colposcopy_impression:
        errors.append(FieldError(field="colposcopy_impression", rule="impression_with_abnormal",
                                 zh="阴道镜异常须填写印象", en="an abnormal colposcopy needs its impression"))
    if c.treatment and c.histology not in ("CIN2", "CIN3", "AIS", "invasive"):
        errors.append(FieldError(field="treatment", rule="treatment_needs_histology",
                                 zh="治疗须有CIN2及以上的组织病理诊断",
                                 en="treatment requires a histology of CIN2 or worse"))
    return errors


def _breast(b: BreastCase) -> list[FieldError]:
    errors = _age_warning(b.age_years)
    if b.palpation is None and b.ultrasound_birads is None:
        errors.append(FieldError(field="palpation", rule="primary_test", zh="须有临床乳腺检查或乳腺超声结果",
                                 en="a clinical breast exam or breast ultrasound result is required"))
    if b.stage is not None and b.pathology not in vs.MALIGNANT_BREAST:
        errors.append(FieldError(field="stage", rule="stage_needs_malignancy", zh="分期仅适用于恶性病理诊断",
                                 en="a stage applies only to a malignant pathology"))
    return errors


def _growth(g: GrowthCheck) -> list[FieldError]:
    errors = []
    birth, measured = _date(g.birth_date), _date(g.screened_on)
    if g.birth_date is not None and (birth is None or (measured and birth > measured)):
        errors.append(FieldError(field="birth_date", rule="date", zh="出生日期无效或晚于测量日期",
                                 en="birth date is invalid or after the measurement"))
    elif birth and measured and (measured - birth).days > 6 * 366:
        errors.append(FieldError(field="birth_date", rule="child_age", zh="儿童保健记录适用于0-6岁",
                                 en="child health checks cover ages 0-6"))
    for field, low, high in (("height_cm", 35.0, 140.0), ("weight_kg", 0.5, 50.0),
                             ("head_circumference_cm", 25.0, 60.0)):
        value = getattr(g, field)
        if value is not None and not low <= value <= high:
            errors.append(FieldError(field=field, rule="range", zh=f"{field} 超出合理范围（{low}-{high}）",
                                     en=f"{field} is outside the plausible range {low}-{high}"))
    return errors


def _prenatal(p: PrenatalVisit) -> list[FieldError]:
    errors = []
    if p.gestational_weeks is not None and not 4 <= p.gestational_weeks <= 45:
        errors.append(FieldError(field="gestational_weeks", rule="range", zh="孕周应在4-45周之间",
                                 en="gestational age must be 4-45 weeks"))
    if p.risk_colour is not None and p.risk_colour not in ("green", "yellow", "orange", "red"):
        errors.append(FieldError(field="risk_colour", rule="value_set", zh="妊娠风险颜色应为绿、黄、橙或红",
                                 en="risk colour must be green, yellow, orange or red"))
    if p.systolic is not None and p.diastolic is not None and p.systolic <= p.diastolic:
        errors.append(FieldError(field="systolic", rule="bp_order", zh="收缩压应高于舒张压",
                                 en="systolic pressure must be above diastolic"))
    return errors


def validate(case: Case, today: dt.date | None = None) -> list[FieldError]:
    """Every field error and warning of ``case`` (empty list: valid)."""
    errors = _common(case, today or dt.date.today()) + _value_sets(case)
    if isinstance(case, CervicalCase):
        errors += _cervical(case)
    elif isinstance(case, BreastCase):
        errors += _breast(case)
    elif isinstance(case, GrowthCheck):
        errors += _growth(case)
    else:
        errors += _prenatal(case)
    return errors


def is_valid(case: Case, today: dt.date | None = None) -> bool:
    """True when :func:`validate` finds no error (warnings allowed)."""
    return not any(e.severity == "error" for e in validate(case, today))


def missing(case: Case) -> list[str]:
    """Fields the case still needs before it is complete, in the order they are expected."""
    out: list[str] = []
    if isinstance(case, CervicalCase):
        if case.hpv == "positive_other" and not (case.tbs or case.pap_class):
            out.append("tbs")  # HPV other high-risk: triage by cytology
        if case.colposcopy == "abnormal" and case.histology is None:
            out.append("histology")
    elif isinstance(case, BreastCase):
        if case.palpation not in (None, "normal") and case.ultrasound_birads is None:
            out.append("ultrasound_birads")
        if case.ultrasound_birads == "0" and case.mammography_birads is None:
            out.append("mammography_birads")
        if {case.ultrasound_birads, case.mammography_birads} & vs.SUSPICIOUS_BIRADS and case.pathology is None:
            out.append("pathology")
        if case.pathology in vs.MALIGNANT_BREAST and case.stage is None:
            out.append("stage")
    elif isinstance(case, GrowthCheck):
        out += [f for f in ("sex", "birth_date", "weight_kg", "height_cm") if getattr(case, f) is None]
    else:
        out += [f for f in ("gestational_weeks", "systolic", "diastolic", "weight_kg") if getattr(case, f) is None]
    return out
