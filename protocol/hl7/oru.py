"""Outbound vitals: one completed station session -> one ORU^R01 v2.5.1 for the HIS.

Layout (../shared/reference/clinical.md): MSH, PID (PID-3 repeats: MRN type MR, national
ID type NNCHN), PV1, OBR with the vital-signs panel 85353-1, one OBX per observation:
NM value, LOINC in OBX-3, UCUM in OBX-6, reference range OBX-7, flag OBX-8, status F,
observation time OBX-14 (the reading's hub time). The message is UTF-8 (MSH-18
``UNICODE UTF-8``) so Chinese names survive; every value is escaped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from protocol import codes
from protocol.clinical.interpret import interpret
from protocol.clinical.patient import Group, Patient
from protocol.hl7.dtm import format_dtm
from protocol.hl7.encoding import DEFAULT, escape
from protocol.hl7.errors import BuildError
from protocol.model import Observation, Reading, SessionOpened, Subject

PANEL = ("85353-1", "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel")
NATIONAL_ID_TYPE = "NNCHN"
MAX_CONTROL_ID = 20  #: MSH-10 length in v2.5.1
#: OBX-7 reference ranges sent with each code for adults (Chinese guidelines); see :func:`reference_ranges_for`
REFERENCE_RANGES: dict[str, str] = {
    codes.SYSTOLIC: "90-139",
    codes.DIASTOLIC: "60-89",
    codes.MEAN_PRESSURE: "70-105",
    codes.PULSE: "60-100",
    codes.TEMPERATURE: "35.0-37.2",
    codes.BMI: "18.5-23.9",
}
_SEX = {"1": "M", "2": "F", "0": "U", "9": "U"}  # GB/T 2261.1 -> HL7 table 0001
_SKIP = {codes.CUFF_PRESSURE}


@dataclass(frozen=True, slots=True)
class VitalsReport:
    """Everything one ORU^R01 needs; ``readings`` are the session's readings in time order."""

    control_id: str  #: MSH-10, stable across resends (the HIS drops duplicates by it)
    session_id: str  #: OBR-2 placer order number
    subject: Subject
    readings: tuple[Reading, ...]
    created_at: int  #: ms since 1970, MSH-7
    sending_facility: str = ""
    receiving_app: str = "HIS"
    receiving_facility: str = ""
    mrn_authority: str = ""
    processing_id: str = "P"
    tz_minutes: int = 480
    reference_ranges: dict[str, str] = field(default_factory=lambda: dict(REFERENCE_RANGES))


def report_for_session(opened: SessionOpened, readings: Iterable[Reading], *, created_at: int,
                       control_id: str = "", **settings: Any) -> VitalsReport:
    """The report of one station session: its subject and its readings in time order.

    Readings of other sessions and live cuff pressure are left out; ``settings`` are the
    other :class:`VitalsReport` fields (facility names, MRN authority, time zone).
    """
    own = sorted((r for r in readings if r.session_id == opened.session_id and r.kind != "cuff_pressure"),
                 key=lambda r: (r.at, r.seq))
    return VitalsReport(control_id=control_id, session_id=opened.session_id, subject=opened.subject,
                        readings=tuple(own), created_at=created_at, **settings)


def reference_ranges_for(patient: Patient, observations: Iterable[Observation], on: dt.date) -> dict[str, str]:
    """OBX-7 for the person measured: adult ranges for adults; for a child the WHO range of her weight
    for size and no range where no paediatric table is loaded; in pregnancy no BMI range (not judged)."""
    group = patient.group(on)
    if group in (Group.ADULT, Group.UNKNOWN):
        return dict(REFERENCE_RANGES)
    ranges = dict(REFERENCE_RANGES)
    if group is Group.PREGNANT:
        ranges[codes.BMI] = ""
        return ranges
    judged = interpret(tuple(observations), patient, on)
    for code in (codes.SYSTOLIC, codes.DIASTOLIC, codes.MEAN_PRESSURE, codes.PULSE, codes.BMI):
        j = judged.get(code)
        ranges[code] = f"{j.low:.1f}-{j.high:.1f}" if j is not None and j.low is not None and j.high is not None else ""
    return ranges


def _value(code: str, value: float) -> str:
    info = codes.CODES.get(code)
    text = f"{value:.{info.decimals}f}" if info is not None else f"{value:.6g}"
    return text


def build_vitals_oru(report: VitalsReport) -> bytes:
    """The ER7 bytes (``\\r`` separated, UTF-8) of the ORU^R01; raises :class:`BuildError`."""
    cid = report.control_id
    if not cid or len(cid) > MAX_CONTROL_ID or not cid.isascii() or not cid.isprintable() or "|" in cid:
        raise BuildError(f"control id must be 1-{MAX_CONTROL_ID} printable ASCII characters")
    s = report.subject
    ids = []
    if s.mrn:
        ids.append(f"{escape(s.mrn)}^^^{escape(report.mrn_authority)}^MR")
    if s.national_id:
        ids.append(f"{escape(s.national_id)}^^^^{NATIONAL_ID_TYPE}")
    if not ids:
        raise BuildError("the session's subject has neither an MRN nor a national ID; the HIS cannot match it")
    observations = [(o, r.at) for r in report.readings for o in r.observations if o.code not in _SKIP]
    if not observations:
        raise BuildError("the session has no observations to report")
    tz = report.tz_minutes
    first = min(at for _, at in observations)
    birth = (s.birth_date or "").replace("-", "")
    d = DEFAULT
    lines = [
        "|".join(["MSH", d.msh2, "MCHUB", escape(report.sending_facility), escape(report.receiving_app),
                  escape(report.receiving_facility), format_dtm(report.created_at, tz), "", "ORU^R01^ORU_R01",
                  cid, report.processing_id, "2.5.1", "", "", "", "", "", "UNICODE UTF-8"]),
        "|".join(["PID", "1", "", "~".join(ids), "", escape(s.name), "", birth, _SEX.get(s.sex, "U")]),
        "PV1|1|O",
        "|".join(["OBR", "1", escape(report.session_id), "", f"{PANEL[0]}^{PANEL[1]}^LN", "", "",
                  format_dtm(first, tz), *[""] * 14, format_dtm(report.created_at, tz), "", "", "F"]),
    ]
    for i, (obs, at) in enumerate(observations, 1):
        info = codes.CODES.get(obs.code)
        name = info.en if info is not None else ""
        unit = escape(obs.unit)
        lines.append("|".join([
            "OBX", str(i), "NM", f"{escape(obs.code)}^{escape(name)}^LN", "", _value(obs.code, obs.value),
            f"{unit}^{unit}^UCUM", escape(report.reference_ranges.get(obs.code, "")), obs.flag or "",
            "", "", "F", "", "", format_dtm(at, tz),
        ]))
    return ("\r".join(lines) + "\r").encode("utf-8")
