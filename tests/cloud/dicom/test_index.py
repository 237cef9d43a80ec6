"""index_dataset: identity, names in GB18030 / ISO_IR 192, UIDs, typed refusals, masking.

Third-party charset vectors: pydicom's ``charset_files/chrX1.dcm`` (ISO_IR 192) and
``chrX2.dcm`` (GB18030), from the dclunie/NEMA character-set samples shipped in pydicom;
their Secondary Capture SOP class is swapped for US in memory, the name bytes untouched.
"""

from __future__ import annotations

import datetime as dt

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from cloud.dicom.errors import DicomError, InvalidUid, MissingAttribute, UnsupportedSopClass
from cloud.dicom.index import index_dataset
from cloud.dicom.intake import read_dataset
from firmware_sim import pacs_data
from tests.cloud.dicom.bundled import CHARSET_FILES, TEST_FILES

NID = pacs_data.national_id()


def _as_us(path) -> Dataset:
    ds = pydicom.dcmread(path)
    ds.SOPClassUID = pacs_data.US_IMAGE
    return ds


@pytest.mark.parametrize(
    ("file", "charset", "ideographic"),
    [("chrX1.dcm", "ISO_IR 192", "王^小東"), ("chrX2.dcm", "GB18030", "王^小东")],
)
def test_third_party_chinese_names_decode(file: str, charset: str, ideographic: str) -> None:
    idx = index_dataset(_as_us(CHARSET_FILES / file))
    assert idx.specific_character_set == (charset,)
    assert idx.patient_name == "Wang^XiaoDong"
    assert idx.patient_name_ideographic == ideographic
    assert idx.display_name == ideographic.replace("^", "")


@pytest.mark.parametrize("charset", ["GB18030", "ISO_IR 192"])
def test_synthetic_chinese_name_round_trips_through_bytes(charset: str) -> None:
    patient = pacs_data.Patient(name="欧阳^娜娜")
    data = pacs_data.to_part10(pacs_data.ultrasound(patient, charset=charset))
    codec = "gb18030" if charset == "GB18030" else "utf-8"
    assert "欧阳^娜娜".encode(codec) in data  # really encoded in that character set
    idx = index_dataset(read_dataset(data))
    assert idx.patient_name == "欧阳^娜娜"
    assert idx.display_name == "欧阳娜娜"


def test_gb18030_trail_bytes_equal_to_delimiters_do_not_split_the_name() -> None:
    """塡 is 0x89 0x5C and 區 is 0x85 0x5E in GB18030: the second bytes are '\\' and '^'."""
    name = "塡區^奬奮"
    data = pacs_data.to_part10(pacs_data.ultrasound(pacs_data.Patient(name=name), charset="GB18030"))
    assert "塡".encode("gb18030")[1:] == b"\\" and "區".encode("gb18030")[1:] == b"^"
    assert name.encode("gb18030") in data
    idx = index_dataset(read_dataset(data))
    assert (idx.patient_name, idx.display_name) == (name, "塡區奬奮")


def test_mammogram_fields_and_national_id_from_other_ids() -> None:
    ds = pacs_data.mammogram(laterality="L", view="CC")
    idx = index_dataset(read_dataset(pacs_data.to_part10(ds)))
    assert (idx.family, idx.modality, idx.laterality, idx.view_position) == ("MG", "MG", "L", "CC")
    assert idx.sop_class_name == "Digital Mammography X-Ray Image Storage - For Presentation"
    assert (idx.patient_id, idx.issuer_of_patient_id) == ("MRN0001", "HOSP-A")
    assert idx.national_id == NID
    assert (idx.national_id_source, idx.national_id_explicit) == ("OtherPatientIDsSequence", True)
    assert idx.study_date == dt.date(2025, 3, 14) and idx.study_time == dt.time(9, 30)
    assert idx.accession_number.startswith("ACC")
    assert idx.sr_text is None and idx.birads is None


def test_view_from_view_code_sequence() -> None:
    ds = pacs_data.mammogram()
    del ds.ViewPosition
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "399368009", "SCT", "medio-lateral oblique"
    ds.ViewCodeSequence = Sequence([code])
    assert index_dataset(ds).view_position == "MLO"


def test_national_id_as_patient_id_without_issuer_is_taken_but_not_explicit() -> None:
    ds = pacs_data.ultrasound()
    ds.PatientID, ds.IssuerOfPatientID = NID.lower(), ""  # lower-case x normalised
    del ds.OtherPatientIDsSequence
    idx = index_dataset(ds)
    assert (idx.national_id, idx.national_id_source, idx.national_id_explicit) == (NID, "PatientID", False)


def test_invalid_number_under_national_issuer_is_a_warning_not_an_id() -> None:
    ds = pacs_data.ultrasound()
    ds.OtherPatientIDsSequence[0].PatientID = NID[:-1] + ("0" if NID[-1] != "0" else "1")
    idx = index_dataset(ds)
    assert idx.national_id is None
    assert any("check character" in w for w in idx.warnings)
    assert NID[:-1] not in " ".join(idx.warnings)  # the number itself is never echoed


def test_mrn_only_has_no_national_id() -> None:
    ds = pacs_data.ultrasound()
    del ds.OtherPatientIDsSequence
    idx = index_dataset(ds)
    assert idx.national_id is None and idx.patient_id == "MRN0001"


def test_identifiers_and_names_never_in_repr_or_log_line() -> None:
    idx = index_dataset(pacs_data.basic_text_sr())
    text = repr(idx) + idx.log_summary()
    assert NID not in text and "王" not in text and "MRN0001" not in text
    assert "1101**********" in idx.log_summary()


@pytest.mark.parametrize("keyword", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"])
def test_missing_required_uid_is_typed(keyword: str) -> None:
    ds = pacs_data.ultrasound()
    delattr(ds, keyword)
    with pytest.raises(MissingAttribute, match=keyword) as info:
        index_dataset(ds)
    assert info.value.failure_reason == 0xA900


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning", "ignore:The value length:UserWarning")
@pytest.mark.parametrize("bad", ["../../etc/passwd", "1.2.3/../4", "1..2", "1.2.", "１.２", "1" * 65])
def test_uid_grammar_is_enforced(bad: str) -> None:
    ds = pacs_data.ultrasound()
    ds.SeriesInstanceUID = bad
    with pytest.raises(InvalidUid):
        index_dataset(ds)


def test_unsupported_sop_class_names_the_class() -> None:
    ds = pydicom.dcmread(TEST_FILES / "MR_small.dcm")
    with pytest.raises(UnsupportedSopClass, match="MR Image Storage") as info:
        index_dataset(ds)
    assert isinstance(info.value, DicomError) and info.value.failure_reason == 0x0122
