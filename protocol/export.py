"""Hand-carried export files (``.mchx``): sealed batches for a USB stick when a hub has no network.

The one export format of mchub: ``mchub edge export`` writes it (edge/export.py, streaming
with :data:`HEADER` and :func:`entry`), ``mchub cloud import`` reads it (cloud/intake/importer.py).

Layout (docs/protocol.md §7), all integers big-endian::

    off  len  field
      0    4  magic "MCHX"
      4    1  version (1)
      5    3  reserved (0)
      8    …  entries: u32 length, then that many bytes of one sealed batch (§3), repeated

The batches are exactly what the hub would have POSTed, so the cloud imports them through
the same checks and the same transaction; importing a file twice is harmless.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from protocol.errors import ProtocolError

MAGIC = b"MCHX"
VERSION = 1
HEADER = MAGIC + bytes([VERSION, 0, 0, 0])  #: the first 8 bytes of every export file
MAX_ENTRY = 64 << 20


class ExportFormatError(ProtocolError):
    """An export file is not in the format above."""


def entry(batch: bytes) -> bytes:
    """One entry of an export file: the length, then the sealed batch (after :data:`HEADER`)."""
    if len(batch) > MAX_ENTRY:
        raise ValueError(f"a batch of {len(batch)} bytes is larger than an export entry may be ({MAX_ENTRY})")
    return struct.pack(">I", len(batch)) + batch


def write_export(batches: Iterable[bytes]) -> bytes:
    """The bytes of an export file holding ``batches`` in order."""
    return HEADER + b"".join(entry(b) for b in batches)


def read_export(data: bytes, max_entry: int = MAX_ENTRY) -> Iterator[bytes]:
    """Yield the sealed batches of an export file; raises ExportFormatError on damage."""
    if data[:4] != MAGIC:
        raise ExportFormatError("not an mchub export file (bad magic)")
    if len(data) < 8 or data[4] != VERSION:
        raise ExportFormatError(f"export file version {data[4] if len(data) > 4 else '?'} is not supported")
    pos = 8
    while pos < len(data):
        if pos + 4 > len(data):
            raise ExportFormatError(f"export file truncated at byte {pos} (inside a length field)")
        (n,) = struct.unpack_from(">I", data, pos)
        if n > max_entry:
            raise ExportFormatError(f"entry at byte {pos} claims {n} bytes, more than the limit {max_entry}")
        if pos + 4 + n > len(data):
            raise ExportFormatError(f"export file truncated at byte {pos}: entry of {n} bytes is incomplete")
        yield data[pos + 4:pos + 4 + n]
        pos += 4 + n
