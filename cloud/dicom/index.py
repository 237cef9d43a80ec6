"""What the cloud indexes about one DICOM instance, pure: :func:`index_dataset`.

Reads a pydicom :class:`~pydicom.dataset.Dataset` (no I/O) and returns a
:class:`StudyIndex`: identity (patient ID and issuer, other IDs, the national ID if one
is found), the patient's name decoded per *Specific Character Set* (pydicom decodes
GB18030 and ISO_IR 192, i.e. UTF-8), study/series/instance UIDs, accession, modality,
laterality, view, study date/time and, for Structured Reports, the flattened text and
the BI-RADS assessment.

National ID rule (issue 7 §5): an 18-character number that passes GB 11643 validation
(:mod:`protocol.idnum`), found in PatientID or in an OtherPatientIDsSequence item. One
whose issuer is a national-ID issuer (:data:`NATIONAL_ID_ISSUERS`) is *explicit* and
preferred; otherwise a valid number in PatientID, then in the sequence, is taken
(``national_id_explicit=False``). The number never appears in ``repr`` or log text.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

from cloud.dicom import sr
from cloud.dicom.errors import MissingAttribute, UnsupportedSopClass
from cloud.dicom.uids import check_uid
from protocol import idnum
from protocol.errors import IdNumberError

#: accepted SOP classes -> family (PS3.4 Annex B.5)
SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.2": "CT",  # CT Image Storage
    "1.2.840.10008.5.1.4.1.1.2.1": "CT",  # Enhanced CT Image Storage
    "1.2.840.10008.5.1.4.1.1.6.1": "US",  # Ultrasound Image Storage
    "1.2.840.10008.5.1.4.1.1.6.2": "US",  # Enhanced US Volume Storage
    "1.2.840.10008.5.1.4.1.1.3.1": "US",  # Ultrasound Multi-frame Image Storage
    "1.2.840.10008.5.1.4.1.1.6": "US",  # Ultrasound Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.3": "US",  # Ultrasound Multi-frame Image Storage (retired)
    "1.2.840.10008.5.1.4.1.1.1.2": "MG",  # Digital Mammography X-Ray Image - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1": "MG",  # Digital Mammography X-Ray Image - For Processing
    "1.2.840.10008.5.1.4.1.1.13.1.3": "MG",  # Breast Tomosynthesis Image Storage
    "1.2.840.10008.5.1.4.1.1.88.11": "SR",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22": "SR",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33": "SR",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34": "SR",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.50": "SR",  # Mammography CAD SR
}

#: issuers (upper-cased) that say "this is a resident ID card number"; configurable per call
NATIONAL_ID_ISSUERS = frozenset(
    {"NNCHN", "CHN", "CN", "RESIDENT_ID", "RESIDENT ID", "NATIONAL_ID", "NATIONAL ID", "ID_CARD", "IDCARD",
     "SFZ", "身份证", "身份证号", "居民身份证"}
)

#: mammography view codes (SNOMED CT and legacy SNOMED RT) -> ViewPosition term
_VIEW_CODES = {
    "399162004": "CC", "R-10242": "CC", "399368009": "MLO", "R-10226": "MLO",
    "399260004": "ML", "R-10224": "ML", "399352003": "LM", "R-10228": "LM",
}


@dataclass(frozen=True, slots=True)
class OtherPatientId:
    """One item of OtherPatientIDsSequence (0010,1002); ``repr`` masks the value."""

    value: str = field(repr=False)
    issuer: str
    type: str

    @property
    def masked(self) -> str:
        """The value masked for screens and logs."""
        return idnum.mask(self.value)


@dataclass(frozen=True, slots=True)
class StudyIndex:
    """Indexed facts about one instance. Identifiers and names are hidden from ``repr``."""

    sop_class_uid: str
    sop_class_name: str
    family: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str = field(repr=False)
    issuer_of_patient_id: str
    other_patient_ids: tuple[OtherPatientId, ...]
    national_id: str | None = field(repr=False)
    national_id_source: str | None
    national_id_explicit: bool
    patient_name: str = field(repr=False)
    patient_name_ideographic: str = field(repr=False)
    patient_name_phonetic: str = field(repr=False)
    patient_sex: str
    patient_birth_date: dt.date | None = field(repr=False)
    specific_character_set: tuple[str, ...]
    accession_number: str
    modality: str
    laterality: str
    view_position: str
    study_date: dt.date | None
    study_time: dt.time | None
    study_description: str
    sr_text: str | None = field(repr=False)
    birads: str | None
    birads_source: str | None
    warnings: tuple[str, ...] = ()

    @property
    def display_name(self) -> str:
        """The name to show: the ideographic group if present (Chinese), else the alphabetic one."""
        return _readable(self.patient_name_ideographic or self.patient_name)

    def log_summary(self) -> str:
        """One line for a technician's log: no names, identifiers masked."""
        who = idnum.mask(self.national_id) if self.national_id else idnum.mask(self.patient_id) or "-"
        extra = f" BI-RADS {self.birads}" if self.birads else ""
        return (
            f"{self.family} {self.sop_instance_uid} study {self.study_instance_uid} "
            f"patient {who} accession {self.accession_number or '-'}{extra}"
        )


def _readable(pn: str) -> str:
    parts = [p for p in pn.split("^") if p]
    if not parts:
        return ""
    cjk = any(ord(ch) > 0x2E7F for ch in pn)
    return ("" if cjk else " ").join(parts)


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple, MultiValue)):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, (list, tuple, MultiValue)):
        return tuple(str(v) for v in value)
    return (str(value),) if value else ()


def _required_uid(ds: Dataset, keyword: str) -> str:
    value = _text(ds, keyword)
    if not value:
        raise MissingAttribute(f"{keyword} is missing or empty")
    return check_uid(value, keyword)


def _parse_date(raw: str, what: str, warnings: list[str]) -> dt.date | None:
    if not raw:
        return None
    try:
        return dt.datetime.strptime(raw.strip()[:8], "%Y%m%d").date()
    except ValueError:
        warnings.append(f"{what} is not a DA value (YYYYMMDD)")
        return None


def _parse_time(raw: str, warnings: list[str]) -> dt.time | None:
    raw = raw.strip().replace(":", "")
    if not raw:
        return None
    try:
        hms = raw.split(".")[0].ljust(6, "0")[:6]
        return dt.time(int(hms[0:2]), int(hms[2:4]), int(hms[4:6]))
    except ValueError:
        warnings.append("StudyTime is not a TM value (HHMMSS)")
        return None


def _other_ids(ds: Dataset) -> tuple[OtherPatientId, ...]:
    seq = ds.get("OtherPatientIDsSequence")
    if not isinstance(seq, Iterable):
        return ()
    return tuple(
        OtherPatientId(_text(item, "PatientID"), _text(item, "IssuerOfPatientID"), _text(item, "TypeOfPatientID"))
        for item in seq
        if isinstance(item, Dataset) and _text(item, "PatientID")
    )


def _national_id(
    patient_id: str, issuer: str, others: tuple[OtherPatientId, ...], issuers: frozenset[str], warnings: list[str]
) -> tuple[str | None, str | None, bool]:
    candidates = [("PatientID", patient_id, issuer)] + [("OtherPatientIDsSequence", o.value, o.issuer) for o in others]
    explicit: list[tuple[str, str]] = []
    implicit: list[tuple[str, str]] = []
    for source, value, iss in candidates:
        named = iss.strip().upper() in issuers
        try:
            number = idnum.normalise(value)
        except IdNumberError as exc:
            if named:
                warnings.append(f"{source}: issuer '{iss}' says national ID but the number is invalid: {exc}")
            continue
        (explicit if named else implicit).append((source, number))
    chosen = explicit + implicit
    if not chosen:
        return None, None, False
    if len({n for _, n in chosen}) > 1:
        warnings.append("more than one different valid national ID in the identifiers; kept the first by priority")
    source, number = chosen[0]
    return number, source, bool(explicit)


def _view(ds: Dataset) -> str:
    view = _text(ds, "ViewPosition")
    if view:
        return view
    seq = ds.get("ViewCodeSequence")
    code = seq[0] if isinstance(seq, Sequence) and len(seq) else None
    if isinstance(code, Dataset):
        return _VIEW_CODES.get(_text(code, "CodeValue"), _text(code, "CodeMeaning"))
    return ""


def index_dataset(ds: Dataset, national_id_issuers: frozenset[str] = NATIONAL_ID_ISSUERS) -> StudyIndex:
    """Index one instance; raise :class:`MissingAttribute`, :class:`InvalidUid` or :class:`UnsupportedSopClass`."""
    warnings: list[str] = []
    sop_class = _required_uid(ds, "SOPClassUID")
    family = SOP_CLASSES.get(sop_class)
    if family is None:
        name = UID(sop_class).name
        raise UnsupportedSopClass(f"SOP class {sop_class} ({name}) is not accepted here; only US, MG, SR and CT")
    sop_instance = _required_uid(ds, "SOPInstanceUID")
    study = _required_uid(ds, "StudyInstanceUID")
    series = _required_uid(ds, "SeriesInstanceUID")
    patient_id, issuer = _text(ds, "PatientID"), _text(ds, "IssuerOfPatientID")
    others = _other_ids(ds)
    national, source, explicit = _national_id(patient_id, issuer, others, national_id_issuers, warnings)
    names = [*_text(ds, "PatientName").split("\\")[0].split("="), "", ""][:3]
    sr_text = birads = birads_source = None
    if family == "SR":
        sr_text = sr.flatten(ds)
        birads = sr.find_birads_coded(ds)
        birads_source = "code" if birads else None
        if birads is None:
            birads = sr.find_birads_in_text(sr_text)
            birads_source = "text" if birads else None
    modality = _text(ds, "Modality")
    if modality and modality != family and not (family == "US" and modality == "IVUS"):
        warnings.append(f"Modality {modality} differs from the SOP class family {family}")
    return StudyIndex(
        sop_class_uid=sop_class,
        sop_class_name=UID(sop_class).name,
        family=family,
        sop_instance_uid=sop_instance,
        study_instance_uid=study,
        series_instance_uid=series,
        patient_id=patient_id,
        issuer_of_patient_id=issuer,
        other_patient_ids=others,
        national_id=national,
        national_id_source=source,
        national_id_explicit=explicit,
        patient_name=names[0],
        patient_name_ideographic=names[1],
        patient_name_phonetic=names[2],
        patient_sex=_text(ds, "PatientSex"),
        patient_birth_date=_parse_date(_text(ds, "PatientBirthDate"), "PatientBirthDate", warnings),
        specific_character_set=_strings(ds.get("SpecificCharacterSet")),
        accession_number=_text(ds, "AccessionNumber"),
        modality=modality or family,
        laterality=_text(ds, "ImageLaterality") or _text(ds, "Laterality"),
        view_position=_view(ds),
        study_date=_parse_date(_text(ds, "StudyDate"), "StudyDate", warnings),
        study_time=_parse_time(_text(ds, "StudyTime"), warnings),
        study_description=_text(ds, "StudyDescription"),
        sr_text=sr_text,
        birads=birads,
        birads_source=birads_source,
        warnings=tuple(warnings),
    )
