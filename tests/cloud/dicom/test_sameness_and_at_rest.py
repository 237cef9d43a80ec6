"""Resends compared by content (issue 16 §6) and objects sealed at rest (issue 17 §9), on the store itself."""

from __future__ import annotations

import copy
import os
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from cloud.dicom.errors import DuplicateConflict
from cloud.dicom.objects import SEALED_MAGIC, ObjectStore
from cloud.dicom.sameness import same_instance
from cloud.records.crypto_at_rest import AtRest
from tests.cloud.dicom.bundled import FIXTURES

CT = FIXTURES / "CT_small.dcm"


def encoded(ds: pydicom.Dataset, syntax: str) -> bytes:
    """``ds`` as a Part 10 file in ``syntax`` (RLE compresses the pixels)."""
    ds = copy.deepcopy(ds)
    if syntax == RLELossless:
        ds.compress(RLELossless, encoding_plugin="pydicom", generate_instance_uid=False)
    else:
        ds.file_meta.TransferSyntaxUID = syntax
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True)
    return out.getvalue()


def put(store: ObjectStore, ds: pydicom.Dataset, data: bytes) -> bool:
    return store.put(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID), data).created


@pytest.fixture
def at_rest() -> AtRest:
    return AtRest(os.urandom(32), os.urandom(32))


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, RLELossless])
def test_the_same_instance_in_another_transfer_syntax_is_a_duplicate(tmp_path: Path, syntax: str) -> None:
    ds = pydicom.dcmread(CT)
    first, again = encoded(ds, ExplicitVRLittleEndian), encoded(ds, syntax)
    assert first != again and same_instance(first, again)
    store = ObjectStore(tmp_path)
    assert put(store, ds, first) and not put(store, ds, again)
    assert store.read(store.instances()[0]) == first and list(store.rejected.iterdir()) == []


def test_new_content_under_the_same_uid_stays_a_conflict(tmp_path: Path) -> None:
    ds = pydicom.dcmread(CT)
    store = ObjectStore(tmp_path)
    put(store, ds, encoded(ds, ExplicitVRLittleEndian))
    changed = copy.deepcopy(ds)
    changed.PatientName = "Other^Name"
    with pytest.raises(DuplicateConflict):
        put(store, ds, encoded(changed, ImplicitVRLittleEndian))
    pixels = copy.deepcopy(ds)
    raw = bytearray(pixels.PixelData)
    raw[100] ^= 0xFF
    pixels.PixelData = bytes(raw)
    with pytest.raises(DuplicateConflict):
        put(store, ds, encoded(pixels, RLELossless))
    assert len(list(store.rejected.glob("*.bin"))) == 2
    assert not same_instance(b"not dicom", encoded(ds, ExplicitVRLittleEndian))


def test_sealed_objects_open_and_plaintext_ones_from_before_still_read(tmp_path: Path, at_rest: AtRest) -> None:
    ds = pydicom.dcmread(CT)
    data = encoded(ds, ExplicitVRLittleEndian)
    legacy = ObjectStore(tmp_path)  # written before encryption at rest existed
    other = copy.deepcopy(ds)
    other.SOPInstanceUID = "1.2.3.4.5.6.7"
    put(legacy, other, encoded(other, ExplicitVRLittleEndian))
    store = ObjectStore(tmp_path, at_rest)
    assert put(store, ds, data)
    sealed = store.path_for(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
    raw = sealed.read_bytes()
    assert raw.startswith(SEALED_MAGIC) and b"DICM" not in raw and str(ds.PatientName).encode() not in raw
    assert store.read(sealed) == data
    assert not put(store, ds, encoded(ds, ImplicitVRLittleEndian))  # duplicates compare the opened bytes
    plain = next(p for p in store.instances() if p != sealed)
    assert store.read(plain) == plain.read_bytes()  # read both: the old plaintext file as it is
    kept = store.quarantine(b"refused input", "test")
    assert b"refused input" not in kept.read_bytes() and store.read_rejected(kept) == b"refused input"
    moved = sealed.with_name("x.dcm")
    moved.write_bytes(raw)
    with pytest.raises(Exception, match="does not open"):  # bound to its SOP Instance UID
        store.read(moved)
