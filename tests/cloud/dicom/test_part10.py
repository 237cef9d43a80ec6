"""Part 10 framing: meta header walk (bounds-checked) and the deterministic re-framing."""

from __future__ import annotations

import tempfile

import pydicom
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.dicom.errors import DicomError, NotDicom
from cloud.dicom.intake import Intake, read_dataset
from cloud.dicom.objects import ObjectStore
from cloud.dicom.part10 import IMPLEMENTATION_CLASS_UID, build_part10, split_part10
from tests.cloud.dicom.bundled import TEST_FILES


def test_split_finds_the_data_set_of_a_third_party_file() -> None:
    data = (TEST_FILES / "CT_small.dcm").read_bytes()
    meta = split_part10(data)
    assert meta.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert meta.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert data[meta.dataset_offset : meta.dataset_offset + 4] == b"\x08\x00\x05\x00"  # (0008,0005)


def test_reframed_file_reads_back_identically() -> None:
    data = (TEST_FILES / "test-SR.dcm").read_bytes()
    meta = split_part10(data)
    framed = build_part10(meta.sop_class_uid, meta.sop_instance_uid, meta.transfer_syntax_uid,
                          data[meta.dataset_offset :])
    again = read_dataset(framed)
    original = pydicom.dcmread(TEST_FILES / "test-SR.dcm")
    assert again == original  # every data element equal
    assert again.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert split_part10(framed).dataset_offset == len(framed) - (len(data) - meta.dataset_offset)


def test_framing_is_deterministic() -> None:
    a = build_part10("1.2", "1.2.3", "1.2.840.10008.1.2", b"\x08\x00\x16\x00")
    assert a == build_part10("1.2", "1.2.3", "1.2.840.10008.1.2", b"\x08\x00\x16\x00")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "no 'DICM'"),
        (b"\0" * 128 + b"DICX", "no 'DICM'"),
        (b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\x00abc", "impossible length"),
        (b"\0" * 128 + b"DICM" + b"\x02\x00\x01\x00OB\0\0\xff\xff\xff\xff", "impossible length"),
        (b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00\x04\x00\x00\x00", "not explicit VR"),
        (b"\0" * 128 + b"DICM" + b"\x02\x00\x01\x00OB", "truncated"),
        (b"\0" * 128 + b"DICM" + b"\x08\x00\x16\x00UI\x02\x001\x00", "no valid Transfer Syntax UID"),
    ],
)
def test_bad_headers_are_typed(data: bytes, message: str) -> None:
    with pytest.raises(NotDicom, match=message):
        split_part10(data)


@given(st.binary(max_size=300))
def test_fuzz_meta_walk_only_typed_errors(tail: bytes) -> None:
    data = b"\0" * 128 + b"DICM" + tail
    try:
        meta = split_part10(data)
    except NotDicom:
        return
    assert 132 <= meta.dataset_offset <= len(data)


SR_BYTES = (TEST_FILES / "test-SR.dcm").read_bytes()


@pytest.mark.filterwarnings("ignore::UserWarning")
@given(st.integers(0, len(SR_BYTES) - 1), st.binary(min_size=1, max_size=4), st.booleans())
def test_fuzz_corrupted_sr_goes_through_the_pipeline_with_typed_errors_only(
    cut: int, junk: bytes, truncate: bool
) -> None:
    mutated = SR_BYTES[:cut] if truncate else SR_BYTES[:cut] + junk + SR_BYTES[cut + len(junk) :]
    with tempfile.TemporaryDirectory() as tmp:
        try:
            index, stored = Intake(ObjectStore(tmp)).store_file(mutated)
        except DicomError:
            return
        assert stored.path.is_file() and index.family == "SR"
