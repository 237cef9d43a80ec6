"""Is a resent instance the same instance? Compare decoded values, not bytes (issue 16 §6).

A PACS may resend an instance in another transfer syntax than the first time (storescu
sends Implicit VR Little Endian by default, a STOW-RS client Explicit VR; a gateway may
compress). The bytes differ, the instance does not. :func:`same_instance` reads both
Part 10 files with pydicom and compares, element by element (file meta group 0002 and
group lengths excluded, sequences recursively):

* every element's decoded value (strings per Specific Character Set, numbers as numbers);
* Pixel Data: the raw bytes when both are native little endian, else the decoded pixel
  arrays (``Dataset.pixel_array``; needs numpy and a decoder for the syntax — RLE is
  built in, JPEG/JPEG 2000 through Pillow). Pixels that cannot be decoded are *not* the
  same: the resend stays a conflict and is kept for inspection, never silently dropped.

Lossy recompression changes pixel values and stays a conflict, as it should.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

PIXEL_DATA = 0x7FE00010


def _read(data: bytes) -> Dataset:
    return pydicom.dcmread(BytesIO(data), force=False)


def same_instance(a: bytes, b: bytes) -> bool:
    """True when two Part 10 files hold the same data set (see the module docstring)."""
    if a == b:
        return True
    try:
        x, y = _read(a), _read(b)
        return _same_dataset(x, y, top=True)
    except Exception:  # unreadable or undecodable: not provably the same, so a conflict
        return False


def _tags(ds: Dataset) -> set[BaseTag]:
    return {t for t in ds.keys() if t.group != 0x0002 and t.element != 0x0000}  # noqa: SIM118 - iterating yields elements


def _same_dataset(x: Dataset, y: Dataset, *, top: bool = False) -> bool:
    tags = _tags(x)
    if tags != _tags(y):
        return False
    for tag in sorted(tags):
        if top and int(tag) == PIXEL_DATA:
            if not _same_pixels(x, y):
                return False
            continue
        if not _same_element(x[tag], y[tag]):
            return False
    return True


def _same_element(ex: DataElement, ey: DataElement) -> bool:
    vx, vy = ex.value, ey.value
    if isinstance(vx, Sequence) or isinstance(vy, Sequence):
        if not (isinstance(vx, Sequence) and isinstance(vy, Sequence)) or len(vx) != len(vy):
            return False
        return all(_same_dataset(ix, iy) for ix, iy in zip(vx, vy, strict=True))
    return bool(_normal(vx) == _normal(vy))


def _normal(value: Any) -> Any:
    """Values that mean the same compare equal: a one-item list and its item, None and empty."""
    if value is None or value == "" or value == b"":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        items = [_normal(v) for v in value]
        return items[0] if len(items) == 1 else tuple(items)
    return value


def _native_le(ds: Dataset) -> bool:
    syntax = ds.file_meta.TransferSyntaxUID
    return not syntax.is_compressed and syntax.is_little_endian


def _same_pixels(x: Dataset, y: Dataset) -> bool:
    if _native_le(x) and _native_le(y):
        return bool(x[PIXEL_DATA].value == y[PIXEL_DATA].value)
    import numpy  # decoded comparison: numpy is what pydicom decodes into

    return bool(numpy.array_equal(x.pixel_array, y.pixel_array))
