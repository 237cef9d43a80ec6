"""pydicom's bundled test files that are US, MG, SR or CT objects, found without the network.

``pydicom.data.get_testdata_files()`` also tries to *download* the files listed in
pydicom's ``urls.json`` (pydicom-data on GitHub), which cannot be reached here; so the
suite globs the installed wheel's ``test_files`` directory itself (exactly the local
part of ``get_testdata_files``) and reports the download-only names as skipped.
"""

from __future__ import annotations

import json
import warnings
from functools import cache
from pathlib import Path

import pydicom
from pydicom.data.data_manager import DATA_ROOT

FAMILIES = {"US", "MG", "SR", "CT"}
TEST_FILES = Path(DATA_ROOT) / "test_files"
CHARSET_FILES = Path(DATA_ROOT) / "charset_files"

#: bundled files we expect to be refused, and the reason code
EXPECTED_REFUSALS = {
    # same SOP Instance UID as reportsi.dcm (sent first, sorted order) but different bytes
    "reportsi_with_empty_number_tags.dcm": "duplicate_conflict",
}


@cache
def local_files() -> tuple[Path, ...]:
    """Every bundled file whose Modality or SOP class is US, MG, SR or CT, sorted by path."""
    found = []
    for path in sorted(TEST_FILES.rglob("*")):
        if not path.is_file():
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            modality = str(ds.get("Modality", ""))
            sop_class = str(ds.get("SOPClassUID", ""))
        except Exception:
            continue  # not DICOM at all (README, JSON, dumps)
        family_by_class = {"1.2.840.10008.5.1.4.1.1.2": "CT", "1.2.840.10008.5.1.4.1.1.6.1": "US"}
        if modality in FAMILIES or family_by_class.get(sop_class) in FAMILIES:
            found.append(path)
    return tuple(found)


def download_only() -> list[str]:
    """Names pydicom would fetch from the network: not in the installed wheel, not testable here."""
    urls = json.loads((Path(DATA_ROOT) / "urls.json").read_text())
    return sorted(name for name in urls if not (TEST_FILES / name).exists())


def name(path: Path) -> str:
    """The file's path relative to pydicom's test_files directory."""
    return str(path.relative_to(TEST_FILES))


#: DICOM objects copied into the repository (tests/cloud/dicom/fixtures/SOURCES names their origin)
FIXTURES = Path(__file__).resolve().parent / "fixtures"
