"""DICOM Part 10 file framing, pure functions over bytes (PS3.10 §7).

Both intake paths end in the same file on disk: STOW-RS receives Part 10 files, C-STORE
receives an encoded data set plus its transfer syntax. :func:`build_part10` writes a
*deterministic* file meta header (no sender-specific elements), so one instance sent
twice — by either transport, with the same transfer syntax — produces identical bytes,
and duplicate detection can compare files byte for byte.

>>> f = build_part10("1.2.840.10008.5.1.4.1.1.2", "1.2.3", "1.2.840.10008.1.2.1", b"")
>>> split_part10(f).transfer_syntax_uid
'1.2.840.10008.1.2.1'
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cloud.dicom.errors import NotDicom
from cloud.dicom.uids import is_uid

#: our Implementation Class UID (a 2.25 UUID-derived root, PS3.5 Annex B.2)
IMPLEMENTATION_CLASS_UID = "2.25.205848239532151062853497219622513470913"
IMPLEMENTATION_VERSION = "MCHUB_1"
MAX_META_BYTES = 64 * 1024

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


@dataclass(frozen=True, slots=True)
class MetaInfo:
    """The parts of a file meta header this package uses, and where the data set starts."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    dataset_offset: int


def split_part10(data: bytes) -> MetaInfo:
    """Walk the file meta group of a Part 10 file (explicit VR little endian, PS3.10 §7.1).

    Every length is bounds-checked; raises :class:`NotDicom` saying what is wrong.
    """
    if len(data) < 132 or data[128:132] != b"DICM":
        raise NotDicom("not a DICOM Part 10 file: no 'DICM' prefix after the 128-byte preamble")
    pos = 132
    values: dict[int, bytes] = {}
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(data):
                raise NotDicom("file meta header is truncated")
            (length,) = struct.unpack_from("<I", data, pos + 8)
            header = 12
        elif len(vr) == 2 and vr.isalpha() and vr.isupper():
            (length,) = struct.unpack_from("<H", data, pos + 6)
            header = 8
        else:
            raise NotDicom("file meta header is not explicit VR little endian (PS3.10 §7.1)")
        end = pos + header + length
        if length == 0xFFFFFFFF or end > len(data) or end - 132 > MAX_META_BYTES:
            raise NotDicom(f"file meta element (0002,{elem:04X}) has an impossible length {length}")
        values[elem] = data[pos + header : end]
        pos = end
    if 0 < len(data) - pos < 8:
        raise NotDicom("file is truncated: fewer bytes than one element header after the meta header")

    def uid(elem: int, name: str, required: bool = True) -> str:
        text = values.get(elem, b"").rstrip(b"\x00 ").decode("ascii", errors="replace")
        if is_uid(text):
            return text
        if required:
            raise NotDicom(f"file meta header has no valid {name} (0002,{elem:04X})")
        return ""  # optional here: the data set's own UIDs are authoritative

    return MetaInfo(
        sop_class_uid=uid(0x0002, "Media Storage SOP Class UID", required=False),
        sop_instance_uid=uid(0x0003, "Media Storage SOP Instance UID", required=False),
        transfer_syntax_uid=uid(0x0010, "Transfer Syntax UID"),
        dataset_offset=pos,
    )


def _element(elem: int, vr: bytes, value: bytes, pad: bytes) -> bytes:
    if len(value) % 2:
        value += pad
    if vr in _LONG_VRS:
        return struct.pack("<HH2s2xI", 0x0002, elem, vr, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, elem, vr, len(value)) + value


def build_part10(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str, dataset: bytes) -> bytes:
    """A Part 10 file: zero preamble, ``DICM``, our deterministic meta header, ``dataset`` as given."""
    body = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01", b"\x00"),
            _element(0x0002, b"UI", sop_class_uid.encode("ascii"), b"\x00"),
            _element(0x0003, b"UI", sop_instance_uid.encode("ascii"), b"\x00"),
            _element(0x0010, b"UI", transfer_syntax_uid.encode("ascii"), b"\x00"),
            _element(0x0012, b"UI", IMPLEMENTATION_CLASS_UID.encode("ascii"), b"\x00"),
            _element(0x0013, b"SH", IMPLEMENTATION_VERSION.encode("ascii"), b" "),
        )
    )
    group_length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body))
    return b"\x00" * 128 + b"DICM" + group_length + body + dataset
