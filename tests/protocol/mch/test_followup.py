"""Follow-up tasks from abnormal results."""

from __future__ import annotations

import datetime as dt

from protocol.mch.followup import follow_ups, overdue
from protocol.mch.records import BreastCase, CervicalCase, PrenatalVisit

BASE = {"case_id": "c1", "site_id": "s1", "subject_id": "p1", "screened_on": "2026-10-01"}


def test_abnormal_cytology_opens_colposcopy_then_biopsy_then_treatment() -> None:
    case = CervicalCase(**BASE, sampling="pap", tbs="HSIL")
    assert [t.kind for t in follow_ups(case)] == ["colposcopy"]
    assert follow_ups(case)[0].due == "2026-10-31"
    case = CervicalCase(**BASE, sampling="pap", tbs="HSIL", colposcopy="abnormal", colposcopy_impression="HSIL")
    assert [t.kind for t in follow_ups(case)] == ["biopsy"]
    case = CervicalCase(**BASE, sampling="pap", tbs="HSIL", colposcopy="abnormal", histology="CIN3")
    assert [t.kind for t in follow_ups(case)] == ["treatment"]
    done = CervicalCase(**BASE, sampling="pap", tbs="HSIL", colposcopy="abnormal", histology="CIN3", treatment="LEEP")
    assert follow_ups(done) == []


def test_negative_cases_need_nothing() -> None:
    assert follow_ups(CervicalCase(**BASE, hpv="negative")) == []
    assert follow_ups(BreastCase(**BASE, palpation="normal", ultrasound_birads="1")) == []


def test_breast_and_prenatal_tasks_and_overdue_list() -> None:
    tasks = follow_ups(BreastCase(**BASE, ultrasound_birads="4A"))
    tasks += follow_ups(PrenatalVisit(**{**BASE, "screened_on": "2026-11-20"}, bp_class="pregnancy_severe"))
    assert [t.kind for t in tasks] == ["breast_biopsy", "bp_review"]
    assert [t.kind for t in overdue(tasks, dt.date(2026, 11, 15))] == ["breast_biopsy"]
    assert tasks[1].due == "2026-11-21"
