"""SR text flattening and BI-RADS extraction (0-6, 4A/4B/4C), coded and free text."""

from __future__ import annotations

import pydicom
import pytest

from cloud.dicom import sr
from cloud.dicom.index import index_dataset
from firmware_sim import pacs_data
from tests.cloud.dicom.bundled import TEST_FILES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BI-RADS 4A", "4A"),
        ("bi-rads: 4b", "4B"),
        ("BIRADS category 4C, biopsy", "4C"),
        ("BI-RADS分类：3类", "3"),
        ("右乳 BI-RADS 2类；左乳 BI-RADS 4a类", "4A"),  # most severe wins
        ("BI-RADS 0 — recall; other side BI-RADS 2", "0"),
        ("BI-RADS® 6 (known malignancy)", "6"),
        ("BI-RADS 5", "5"),
        ("BI-RADS 7", None),
        ("BI-RADS 5th edition", None),
        ("BI-RADS 2013", None),
        ("no assessment given", None),
        ("BI-RADS 4 suspicious", "4"),
    ],
)
def test_birads_in_text(text: str, expected: str | None) -> None:
    assert sr.find_birads_in_text(text) == expected


def test_severity_order() -> None:
    assert sr.most_severe(["2", "0", "3"]) == "0"
    assert sr.most_severe(["4A", "4C", "4B"]) == "4C"
    assert sr.most_severe(["5", "4C", "6"]) == "6"
    assert sr.most_severe([]) is None


@pytest.mark.parametrize("charset", ["GB18030", "ISO_IR 192"])
@pytest.mark.parametrize("category", ["0", "3", "4A", "4B", "4C", "5", "6"])
def test_basic_text_sr_text_assessment(charset: str, category: str) -> None:
    ds = pydicom.dcmread(_bytes_io(pacs_data.basic_text_sr(charset=charset, birads=category)))
    idx = index_dataset(ds)
    assert (idx.birads, idx.birads_source) == (category, "text")
    assert idx.sr_text is not None and "左乳外上象限见低回声结节" in idx.sr_text
    assert f"Impression: 左乳结节，BI-RADS {category}类" in idx.sr_text


@pytest.mark.parametrize("category", ["0", "1", "2", "3", "4", "5"])
def test_coded_assessment_wins_over_text(category: str) -> None:
    ds = pacs_data.basic_text_sr(birads=category, coded=True)
    ds.ContentSequence[1].TextValue = "印象：BI-RADS 2类"  # text says otherwise
    idx = index_dataset(ds)
    assert (idx.birads, idx.birads_source) == (category, "code")


def test_coded_meaning_with_subcategory() -> None:
    ds = pacs_data.basic_text_sr(birads="4", coded=True)
    code = ds.ContentSequence[2].ConceptCodeSequence[0]
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "X4B", "99LOCAL", "4B - Moderate suspicion"
    assert index_dataset(ds).birads == "4B"


def test_third_party_comprehensive_sr_flattens() -> None:
    """pydicom's test-SR.dcm (OFFIS dcmtk sample document)."""
    idx = index_dataset(pydicom.dcmread(TEST_FILES / "test-SR.dcm"))
    assert idx.family == "SR" and idx.birads is None
    lines = idx.sr_text.splitlines()
    assert lines[0] == "Diagnosis"
    assert "    Text Code: A mass of" in lines
    assert "    Diameter: 3 cm" in lines


def test_deep_or_huge_trees_are_bounded() -> None:
    ds = pacs_data.basic_text_sr()
    node = ds
    for _ in range(sr.MAX_DEPTH + 20):  # deeper than allowed
        child = pydicom.Dataset()
        child.RelationshipType, child.ValueType = "CONTAINS", "TEXT"
        child.TextValue = "x" * 4000
        node.ContentSequence = pydicom.Sequence([child])
        node = child
    text = sr.flatten(ds)
    assert len(text) <= sr.MAX_TEXT_CHARS + 2


def _bytes_io(ds):
    import io

    return io.BytesIO(pacs_data.to_part10(ds))
