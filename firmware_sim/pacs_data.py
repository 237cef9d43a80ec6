"""Synthetic DICOM instances a Chinese hospital PACS would send, built with pydicom.

pydicom's bundled test files have no Chinese-charset ultrasound or mammography and no
breast-imaging SR, so the simulator makes its own:

* :func:`ultrasound` — Ultrasound Image Storage, breast US;
* :func:`mammogram` — Digital Mammography For Presentation, with laterality and view;
* :func:`basic_text_sr` — Basic Text SR with findings text and a BI-RADS assessment,
  optionally coded (SNOMED CT "Mammography assessment (Category n)").

Every one carries a patient name in Chinese encoded with the chosen Specific Character
Set (``GB18030`` or ``ISO_IR 192`` = UTF-8), an MRN as PatientID and the national ID in
OtherPatientIDsSequence with issuer ``NNCHN``. :func:`to_part10` returns file bytes.
Only ``protocol`` is imported (for the ID check character); nothing of the cloud.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from io import BytesIO

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from protocol.idnum import check_character

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
MG_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"

#: BI-RADS category -> (SNOMED CT code, meaning); 4A/4B/4C have no such code and stay text
SNOMED_BIRADS = {
    "0": ("397138000", "Mammography assessment (Category 0)"),
    "1": ("397140005", "Mammography assessment (Category 1)"),
    "2": ("397141009", "Mammography assessment (Category 2)"),
    "3": ("397143007", "Mammography assessment (Category 3)"),
    "4": ("397144001", "Mammography assessment (Category 4)"),
    "5": ("397145000", "Mammography assessment (Category 5)"),
}


def national_id(region: str = "110105", birth: str = "19850612", serial: str = "042") -> str:
    """A valid 18-character resident ID number (GB 11643 check character computed here)."""
    first17 = region + birth + serial
    return first17 + check_character(first17)


@dataclass(frozen=True)
class Patient:
    """Who the synthetic study is about."""

    name: str = "王^秀英"  # family^given, as PN
    national_id: str = national_id()
    mrn: str = "MRN0001"
    mrn_issuer: str = "HOSP-A"
    sex: str = "F"
    birth_date: str = "19850612"


def _base(patient: Patient, sop_class: str, modality: str, charset: str, study_uid: str | None) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid(prefix=None)
    ds.file_meta.MediaStorageSOPInstanceUID = UID(ds.SOPInstanceUID)
    ds.StudyInstanceUID = study_uid or generate_uid(prefix=None)
    ds.SeriesInstanceUID = generate_uid(prefix=None)
    ds.Modality = modality
    now = dt.datetime(2025, 3, 14, 9, 30, 0)
    ds.StudyDate, ds.StudyTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    ds.ContentDate, ds.ContentTime = ds.StudyDate, ds.StudyTime
    ds.AccessionNumber = "ACC" + ds.SOPInstanceUID[-8:].replace(".", "")
    ds.StudyDescription = "乳腺筛查"
    ds.PatientName = patient.name
    ds.PatientID = patient.mrn
    ds.IssuerOfPatientID = patient.mrn_issuer
    ds.PatientSex = patient.sex
    ds.PatientBirthDate = patient.birth_date
    other = Dataset()
    other.PatientID = patient.national_id
    other.IssuerOfPatientID = "NNCHN"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = Sequence([other])
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    return ds


def _pixels(ds: Dataset, rows: int = 8, cols: int = 8) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = bytes((r * cols + c) % 256 for r in range(rows) for c in range(cols))


def ultrasound(patient: Patient | None = None, charset: str = "GB18030", study_uid: str | None = None) -> Dataset:
    """A breast ultrasound image."""
    ds = _base(patient or Patient(), US_IMAGE, "US", charset, study_uid)
    ds.Laterality = "L"
    _pixels(ds)
    return ds


def mammogram(
    patient: Patient | None = None, charset: str = "ISO_IR 192", laterality: str = "R", view: str = "MLO",
    study_uid: str | None = None,
) -> Dataset:
    """A digital mammogram (for presentation) with ImageLaterality and ViewPosition."""
    ds = _base(patient or Patient(), MG_FOR_PRESENTATION, "MG", charset, study_uid)
    ds.ImageLaterality = laterality
    ds.ViewPosition = view
    ds.PresentationIntentType = "FOR PRESENTATION"
    _pixels(ds)
    return ds


def _code(value: str, scheme: str, meaning: str) -> Sequence:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return Sequence([item])


def basic_text_sr(
    patient: Patient | None = None, charset: str = "GB18030", birads: str = "4A", coded: bool = False,
    study_uid: str | None = None,
) -> Dataset:
    """A Basic Text SR breast report: findings and impression text, BI-RADS in text (or coded)."""
    ds = _base(patient or Patient(), BASIC_TEXT_SR, "SR", charset, study_uid)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = _code("18748-4", "LN", "Diagnostic imaging report")
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    items = []
    for concept, text in (
        (("121071", "DCM", "Finding"), "左乳外上象限见低回声结节，大小约12mm×8mm，边界欠清。"),
        (("121073", "DCM", "Impression"), f"左乳结节，BI-RADS {birads}类，建议活检。"),
    ):
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "TEXT"
        item.ConceptNameCodeSequence = _code(*concept)
        item.TextValue = text
        items.append(item)
    if coded and birads in SNOMED_BIRADS:
        item = Dataset()
        item.RelationshipType, item.ValueType = "CONTAINS", "CODE"
        item.ConceptNameCodeSequence = _code("111005", "DCM", "Assessment Category")
        item.ConceptCodeSequence = _code(SNOMED_BIRADS[birads][0], "SCT", SNOMED_BIRADS[birads][1])
        items.append(item)
    ds.ContentSequence = Sequence(items)
    return ds


def to_part10(ds: Dataset) -> bytes:
    """Encode ``ds`` as a DICOM Part 10 file (preamble, meta header, explicit VR little endian)."""
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
