"""Stored inbound messages -> typed results and patient identifiers (no database here).

:func:`process_message` reads one stored message (already accepted by the listener) and
returns what it means for mchub: lab results with their LOINC code (mapped from local
codes through the configured :class:`~protocol.hl7.codemap.CodeMap`), a screening
category (HPV, cytology/TBS, pathology) when recognisable, and the patient's
identifiers (MRN, validated national ID). ADT^A40 carries the identifiers merged away.
:class:`cloud.integration.inbound.Hl7Processor` persists them.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

import msgspec

from protocol import idnum
from protocol.errors import IdNumberError
from protocol.hl7.ack import Code, application_ack_wanted, build_ack
from protocol.hl7.codemap import CodeMap
from protocol.hl7.dtm import parse_dtm
from protocol.hl7.errors import Hl7Error
from protocol.hl7.message import RESULT_TYPES, Coded, Message, Obx, Patient, PatientId, parse, parse_header
from protocol.hl7.oru import NATIONAL_ID_TYPE

Category = Literal["hpv", "cytology", "pathology", "lab"]
NATIONAL_ID_TYPES = (NATIONAL_ID_TYPE, "NI")  #: PID-3 identifier types read as the resident ID number

#: LOINC codes of the screening results the MCH programme tracks (clinical.md)
CATEGORY_BY_LOINC: dict[str, Category] = {
    "21440-3": "hpv", "30167-1": "hpv", "59263-4": "hpv", "59420-0": "hpv", "77379-6": "hpv", "77399-4": "hpv",
    "10524-7": "cytology", "19762-4": "cytology", "47527-7": "cytology", "19764-0": "cytology",
    "22637-3": "pathology", "33746-9": "pathology", "60567-5": "pathology",
}
_KEYWORDS: tuple[tuple[Category, re.Pattern[str]], ...] = (
    ("hpv", re.compile(r"HPV|乳头瘤", re.I)),
    ("cytology", re.compile(r"\bTBS\b|\bTCT\b|\bLCT\b|cytolog|细胞学|巴氏|Pap", re.I)),
    ("pathology", re.compile(r"patholog|histolog|病理|活检", re.I)),
)
TBS_TERMS = ("NILM", "ASC-US", "ASC-H", "LSIL", "HSIL", "SCC", "AGC", "AIS")
_TBS = re.compile(r"\b(NILM|ASC-?US|ASC-?H|LSIL|HSIL|SCC|AGC|AIS)\b", re.I)
_NEGATIVE = re.compile(r"阴性|negative|not detected|\bneg\b|未检出|未见上皮内病变", re.I)
_POSITIVE = re.compile(r"阳性|positive|\bdetected\b|\bpos\b|检出", re.I)


class LabResult(msgspec.Struct, frozen=True, kw_only=True):
    """One OBX as mchub keeps it."""

    order_code: str  #: OBR-4 identifier
    code: str  #: OBX-3 identifier as sent
    system: str  #: OBX-3 coding system (LN, L, 99xxx)
    name: str
    loinc: str | None  #: LOINC, directly or through the code map; None when unmapped
    category: Category
    value_type: str
    value: str  #: OBX-5 (repetitions joined by "; ")
    numeric: float | None = None
    coded_system: str = ""  #: coding system of a CWE value (SCT, L, ...)
    units: str = ""
    reference_range: str = ""
    flags: tuple[str, ...] = ()
    status: str = ""
    observed_at: str | None = None  #: ISO 8601, from OBX-14, else OBR-7
    interpretation: str | None = None  #: HPV positive/negative, or the TBS category


class PatientKeys(msgspec.Struct, frozen=True, kw_only=True):
    """How a message names its patient; the national ID is validated (GB 11643) or left out."""

    mrn: str | None = None
    mrn_authority: str = ""
    national_id: str | None = None
    identifiers: tuple[PatientId, ...] = ()
    name: str = ""
    birth_date: str = ""
    sex: str = ""


class Processed(msgspec.Struct, frozen=True, kw_only=True):
    """What one message means: its event, patient keys, results, merged identifiers, warnings."""

    message_type: str  #: ORU^R01, ADT^A04, ...
    control_id: str
    patient: PatientKeys
    results: tuple[LabResult, ...] = ()
    merge_prior: tuple[PatientId, ...] = ()
    warnings: tuple[str, ...] = ()


def patient_keys(p: Patient, warnings: list[str]) -> PatientKeys:
    """MRN (type MR, else the first other PID-3) and the validated national ID."""
    nid = p.first(*NATIONAL_ID_TYPES)
    mrn = p.first("MR") or next((i for i in p.identifiers if i is not nid), None)
    national: str | None = None
    if nid is not None:
        try:
            national = idnum.normalise(nid.id)
        except IdNumberError as exc:
            warnings.append(f"PID-3 national ID ignored: {exc}")
    return PatientKeys(mrn=mrn.id if mrn else None, mrn_authority=mrn.authority if mrn else "",
                       national_id=national, identifiers=p.identifiers,
                       name=(p.family_name + p.given_name).strip(), birth_date=p.birth_date, sex=p.sex)


@functools.lru_cache(maxsize=4096)  # a lab sends few distinct codes: the keyword search once per code
def category(loinc: str | None, code: Coded) -> Category:
    """Screening category from the LOINC table, else from keywords in the code's text."""
    if loinc is not None and loinc in CATEGORY_BY_LOINC:
        return CATEGORY_BY_LOINC[loinc]
    text = f"{code.code} {code.text} {code.alt_text}"
    return next((cat for cat, pattern in _KEYWORDS if pattern.search(text)), "lab")


@functools.lru_cache(maxsize=4096)  # most values repeat (negative, NILM, ...)
def interpret(cat: Category, value: str) -> str | None:
    """HPV -> positive/negative; cytology -> TBS category (NILM, ASC-US, ...); else None."""
    if cat == "hpv":
        if _NEGATIVE.search(value):
            return "negative"
        return "positive" if _POSITIVE.search(value) else None
    if cat == "cytology":
        m = _TBS.search(value)
        if m:
            term = m.group(1).upper()
            return {"ASCUS": "ASC-US", "ASCH": "ASC-H"}.get(term, term)
        return "NILM" if _NEGATIVE.search(value) else None
    return None


@functools.lru_cache(maxsize=4096)  # a message's OBX mostly share OBR-7 or one OBX-14
def _iso(dtm: str) -> str | None:
    t = parse_dtm(dtm)
    return t.isoformat() if t is not None else None


def _result(order: Coded, obx: Obx, order_time: str, codes: CodeMap, warnings: list[str]) -> LabResult:
    loinc = codes.loinc(obx.code)
    if loinc is None:
        warnings.append(f"OBX {obx.set_id}: local code {obx.code.system}:{obx.code.code} has no LOINC mapping")
    cat = category(loinc, obx.code)
    value = "; ".join(obx.values)
    when = None
    try:
        when = _iso(obx.observed_at or order_time)
    except Hl7Error as exc:
        warnings.append(f"OBX {obx.set_id}: observation time ignored: {exc}")
    coded_value = obx.coded[0] if obx.coded else None
    return LabResult(
        order_code=order.code, code=obx.code.code or obx.code.alt_code, system=obx.code.system or obx.code.alt_system,
        name=obx.code.text or obx.code.alt_text, loinc=loinc, category=cat, value_type=obx.value_type, value=value,
        numeric=obx.numeric, coded_system=coded_value.system if coded_value else "", units=obx.units.code,
        reference_range=obx.reference_range, flags=obx.flags, status=obx.status, observed_at=when,
        interpretation=interpret(cat, " ".join([*obx.values, *(c.text for c in obx.coded)])),
    )


def process_message(raw: bytes, codes: CodeMap | None = None) -> Processed:
    """Interpret one stored message; raises :class:`Hl7Error` if it no longer parses."""
    message: Message = parse(raw)
    codes = codes or CodeMap()
    warnings: list[str] = []
    h = message.header
    assert message.patient is not None  # parse() requires PID for ORU and ADT
    keys = patient_keys(message.patient, warnings)
    results = tuple(_result(o.service, x, o.observed_at, codes, warnings)
                    for o in message.orders for x in o.observations)
    return Processed(message_type=f"{h.message_type}^{h.trigger_event}", control_id=h.control_id, patient=keys,
                     results=results if h.message_type in RESULT_TYPES else (), merge_prior=message.merge_prior,
                     warnings=tuple(warnings))


def application_ack(raw: bytes, error: Hl7Error | None, *, control_id: str, timestamp: str,
                    sending_app: str = "MCHUB") -> bytes | None:
    """The application ACK (AA/AE/AR) that MSH-16 asks for once a message is processed, or None.

    Only enhanced-mode messages ask for one; it travels back to the sender as a message of
    its own (the caller sends it with an :class:`~cloud.mllp.client.MllpSender`).
    """
    try:
        header = parse_header(raw)
    except Hl7Error:
        return None
    if not header.enhanced or not application_ack_wanted(header, ok=error is None):
        return None
    code: Code = "AA" if error is None else error.ack_code
    return build_ack(header, code, control_id=control_id, timestamp=timestamp, error=error, sending_app=sending_app)
