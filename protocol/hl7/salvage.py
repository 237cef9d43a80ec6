"""What can still be read of a message header the strict reader refused (to answer and log it).

:func:`salvage_header` is independent of :func:`protocol.hl7.message.check`: it reads only
the first MSH line (within the first :data:`MAX_HEAD` bytes), decodes nothing but that
line, and never raises. So a defect in the body, an unknown MSH-18, a bad MSH-12 or broken
encoding characters still leave MSH-10, the sender and the message type readable: the
ACK echoes MSH-10 in MSA-2 (senders route replies by it) and the inbound log row keeps
them. Values that would make the ACK itself invalid (an unknown charset, a version that
is not 2.x, an accept-ack mode outside AL/NE/ER/SU) are left out of the salvaged header.

    >>> h = salvage_header(b"MSH|^~\\\\&|LIS||||2026||ORU^R01|77|P|9.9|||||EBCDIC\\rPID|bad")
    >>> h.control_id, h.message_type, h.version, h.charset
    ('77', 'ORU', '2.5.1', '')
"""

from __future__ import annotations

from protocol.hl7.encoding import CHARSETS, Delimiters, charset_key, charset_known, delimiters_from
from protocol.hl7.er7 import Segment
from protocol.hl7.errors import NotHl7
from protocol.hl7.view import Header

MAX_HEAD = 4096  #: bytes searched for an MSH segment
MAX_VALUE = 199  #: longest value kept (the length of MSH-10)
_DEFAULT_VERSION = "2.5.1"


def _delimiters(line: bytes) -> Delimiters | None:
    try:
        return delimiters_from(line)
    except NotHl7:
        pass
    fs = chr(line[3]) if len(line) > 3 else ""
    if not fs or fs.isalnum() or fs in " \t^~\\&":
        return None
    return Delimiters(fs)  # MSH-2 unusable: read the fields with the standard component characters


def _codec(fields: list[bytes], delims: Delimiters) -> str:
    msh18 = fields[17].decode("latin-1") if len(fields) > 17 else ""
    first = msh18.split(delims.repetition, 1)[0].split(delims.component, 1)[0].strip()
    return CHARSETS.get(charset_key(first)) or "utf-8"


def salvage_header(raw: bytes) -> Header | None:
    """The MSH fields of ``raw`` that can be read, or None when no MSH segment is there."""
    head = raw[:MAX_HEAD]
    at = head.find(b"MSH")
    while at >= 0:
        end = min((i for i in (head.find(b"\r", at), head.find(b"\n", at)) if i >= 0), default=len(head))
        line = head[at:end]
        delims = _delimiters(line)
        if delims is not None:
            return _header(line, delims)
        at = head.find(b"MSH", at + 3)
    return None


def _header(line: bytes, d: Delimiters) -> Header:
    raw_fields = line.split(d.field.encode("latin-1"))
    codec = _codec(raw_fields, d)
    text = line.decode(codec, errors="replace")
    fields = text.split(d.field)
    seg = Segment("MSH", ["MSH", d.field, *fields[1:]], d, codec, 0)

    def get(n: int, comp: int = 1) -> str:
        return seg.get(n, comp).strip()[:MAX_VALUE]

    processing = get(11).upper()
    version = get(12)
    accept, app = get(15).upper(), get(16).upper()
    modes = ("", "AL", "NE", "ER", "SU")
    charset = get(18)
    return Header(
        d, get(3), get(4), get(5), get(6), get(7),
        get(9, 1).upper(), get(9, 2).upper(), get(9, 3), get(10),
        processing if processing in ("P", "T", "D") else "P",
        version if version.startswith("2.") else _DEFAULT_VERSION,
        accept if accept in modes else "", app if app in modes else "",
        charset if charset_known(charset) else "",
    )
