"""Follow-up tasks created by positive or abnormal screening results.

Every abnormal result must be followed up: the rules below say *what* should happen
next and *by when*. A task closes when the result it waits for arrives (the case's field
named in ``closes_on`` is filled). Pure: the cloud stores tasks and lists overdue ones.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from protocol.mch import valuesets as vs
from protocol.mch.records import BreastCase, Case, CervicalCase, GrowthCheck, PrenatalVisit

#: colours the 2017 规范 (国卫办妇幼发〔2017〕35号) puts into high-risk case management (高危孕产妇专案管理)
HIGH_RISK_COLOURS = ("orange", "red")
#: days to take her into case management and report her; the 规范 says "及时报告" (report in time): a local default
HIGH_RISK_DAYS = 3
#: prenatal BP classes (protocol.clinical.pregnancy.PregnancyBp) that need a review visit
PREGNANCY_HYPERTENSION = ("pregnancy_hypertension", "hypertension_before_20", "pregnancy_severe")


class FollowUp(msgspec.Struct, frozen=True, kw_only=True):
    """One thing that must happen next for a case."""

    case_id: str
    kind: str  #: stable id, e.g. "colposcopy"
    closes_on: str  #: the case field whose value closes the task
    due: str  #: YYYY-MM-DD
    zh: str
    en: str


def _task(case: Case, kind: str, closes_on: str, days: int, zh: str, en: str) -> FollowUp:
    due = dt.date.fromisoformat(case.screened_on) + dt.timedelta(days=days)
    return FollowUp(case_id=case.case_id, kind=kind, closes_on=closes_on, due=due.isoformat(), zh=zh, en=en)


def follow_ups(case: Case) -> list[FollowUp]:
    """The open follow-up tasks of ``case`` in its current state."""
    tasks: list[FollowUp] = []
    if isinstance(case, CervicalCase):
        abnormal = case.tbs in vs.ABNORMAL_TBS or case.pap_class in vs.ABNORMAL_PAP or case.hpv in vs.HPV_16_18
        if abnormal and case.colposcopy is None:
            tasks.append(_task(case, "colposcopy", "colposcopy", 30, "通知阴道镜检查", "arrange colposcopy"))
        if case.hpv == "positive_other" and not (case.tbs or case.pap_class):
            tasks.append(_task(case, "cytology_triage", "tbs", 30, "HPV阳性，安排细胞学分流",
                               "HPV positive: arrange cytology triage"))
        if case.colposcopy == "abnormal" and case.histology is None:
            tasks.append(_task(case, "biopsy", "histology", 30, "阴道镜异常，追踪组织病理结果",
                               "abnormal colposcopy: obtain histology"))
        if case.histology in ("CIN2", "CIN3", "AIS", "invasive") and not case.treatment:
            tasks.append(_task(case, "treatment", "treatment", 60, "CIN2及以上，追踪治疗情况",
                               "CIN2 or worse: follow up treatment"))
    elif isinstance(case, BreastCase):
        if case.ultrasound_birads == "0" and case.mammography_birads is None:
            tasks.append(_task(case, "mammography", "mammography_birads", 30, "超声BI-RADS 0类，安排乳腺X线检查",
                               "ultrasound BI-RADS 0: arrange mammography"))
        if {case.ultrasound_birads, case.mammography_birads} & vs.SUSPICIOUS_BIRADS and case.pathology is None:
            tasks.append(_task(case, "breast_biopsy", "pathology", 30, "BI-RADS 4类及以上，追踪病理结果",
                               "BI-RADS 4 or above: obtain pathology"))
        if "3" in (case.ultrasound_birads, case.mammography_birads) and case.pathology is None:
            tasks.append(_task(case, "short_interval", "pathology", 180, "BI-RADS 3类，6个月后复查",
                               "BI-RADS 3: repeat imaging in 6 months"))
    elif isinstance(case, GrowthCheck):
        if any(f.startswith("severe_") or f in ("stunting", "wasting", "underweight") for f in case.findings):
            tasks.append(_task(case, "growth_review", "findings", 30, "营养不良，1个月内复查",
                               "undernutrition: review within a month"))
    elif isinstance(case, PrenatalVisit):
        if case.bp_class in PREGNANCY_HYPERTENSION:
            days = 1 if case.bp_class == "pregnancy_severe" else 7
            tasks.append(_task(case, "bp_review", "bp_class", days, "妊娠期高血压，安排复诊",
                               "hypertension in pregnancy: arrange review"))
        if (case.risk_colour in HIGH_RISK_COLOURS or case.risk_purple) and case.risk_managed_on is None:
            tasks.append(_task(case, "high_risk_management", "risk_managed_on", HIGH_RISK_DAYS,
                               "高危孕产妇：纳入专案管理并报告",
                               "high-risk pregnancy: start case management and report"))
    return tasks


def overdue(tasks: list[FollowUp], today: dt.date) -> list[FollowUp]:
    """Tasks past their due date, oldest first."""
    return sorted((t for t in tasks if dt.date.fromisoformat(t.due) < today), key=lambda t: t.due)
