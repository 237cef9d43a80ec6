"""HL7 acknowledgements: which answer a message gets, building it, and reading one.

Original mode (MSH-15 and MSH-16 empty): every message gets ``AA`` (accepted), ``AE``
(error in the message) or ``AR`` (rejected: unsupported type, version, not HL7).
Enhanced mode (MSH-15 or MSH-16 valued): the receiver sends a *commit* ack ``CA``/``CE``/
``CR`` once the message is safely stored, and only when MSH-15 asks for it: ``AL``
always (also when empty), ``NE`` never, ``ER`` only on error, ``SU`` only on success.
MSH-16 asks for a later *application* ack; :func:`application_ack_wanted` tells whether.

    >>> from protocol.hl7.message import parse_header
    >>> h = parse_header(b"MSH|^~\\\\&|LIS|H||MC|20260101||ORU^R01|42|P|2.5.1|||AL|NE")
    >>> ack_code(h, None), ack_wanted(h, ok=True)
    ('CA', True)
"""

from __future__ import annotations

from typing import Literal

import msgspec

from protocol.hl7.encoding import DEFAULT, charset_known, codec_for, escape
from protocol.hl7.er7 import split_message
from protocol.hl7.errors import CharsetError, Hl7Error, MissingField
from protocol.hl7.message import Header, read_header

Code = Literal["AA", "AE", "AR", "CA", "CE", "CR"]

#: HL7 table 0357 (message error condition codes)
ERROR_TEXT: dict[str, str] = {
    "0": "Message accepted", "100": "Segment sequence error", "101": "Required field missing",
    "102": "Data type error", "103": "Table value not found", "200": "Unsupported message type",
    "201": "Unsupported event code", "202": "Unsupported processing id", "203": "Unsupported version id",
    "204": "Unknown key identifier", "205": "Duplicate key identifier", "206": "Application record locked",
    "207": "Application internal error",
}
_ENHANCED: dict[str, Code] = {"AA": "CA", "AE": "CE", "AR": "CR"}


def ack_code(header: Header | None, error: Hl7Error | None) -> Code:
    """The MSA-1 code for a message with ``header`` that failed with ``error`` (None = stored fine)."""
    code: Code = "AA" if error is None else error.ack_code
    if header is not None and header.enhanced:
        return _ENHANCED[code]
    return code


def ack_wanted(header: Header | None, ok: bool) -> bool:
    """Whether MSH-15 asks for a (commit) ack; original mode always gets one."""
    if header is None or not header.enhanced:
        return True
    mode = header.accept_ack or "AL"
    return mode == "AL" or (mode == "ER" and not ok) or (mode == "SU" and ok)


def application_ack_wanted(header: Header, ok: bool) -> bool:
    """Whether MSH-16 asks for an application ack after processing (enhanced mode only)."""
    mode = header.app_ack
    return mode == "AL" or (mode == "ER" and not ok) or (mode == "SU" and ok)


def build_ack(
    header: Header | None,
    code: Code,
    *,
    control_id: str,
    timestamp: str,
    text: str = "",
    error: Hl7Error | None = None,
    sending_app: str = "MCHUB",
    sending_facility: str = "",
    original_control_id: str = "",
) -> bytes:
    """An ACK answering ``header`` (or an unparseable message when None), in its delimiters and charset.

    ``control_id`` is the ACK's own MSH-10; MSA-2 echoes the original MSH-10. With an
    ``error``, an ERR segment carries location (ERR-2), code (ERR-3), severity and text (ERR-8).
    """
    d = header.delimiters if header is not None else DEFAULT
    fs, cs = d.field, d.component

    def e(value: str) -> str:
        return escape(value, d)

    trigger = header.trigger_event if header is not None else ""
    msh = [
        "MSH", d.msh2, e(sending_app), e(sending_facility),
        e(header.sending_app) if header else "", e(header.sending_facility) if header else "",
        e(timestamp), "", f"ACK{cs}{e(trigger)}{cs}ACK", e(control_id),
        e(header.processing_id) if header else "P", e(header.version) if header else "2.5.1",
        "", "", "", "", "", e(header.charset) if header and charset_known(header.charset) else "",
    ]
    while msh and not msh[-1]:
        msh.pop()
    msa_id = header.control_id if header is not None else original_control_id
    if error is not None and not text:
        text = str(error)
    segments = [fs.join(msh), fs.join(["MSA", code, e(msa_id), e(text[:80])]).rstrip(fs)]
    if error is not None:
        loc = error.location.split("^")
        location = cs.join(e(p) for p in loc) if error.location else ""
        err3 = cs.join([error.hl7_code, e(ERROR_TEXT.get(error.hl7_code, "")), "HL70357"])
        severity = "E"
        segments.append(fs.join(["ERR", "", location, err3, severity, "", "", "", e(str(error))]))
    try:
        codec = codec_for(header.charset) if header is not None else "utf-8"
    except CharsetError:  # an unknown MSH-18 is answered in UTF-8 (its MSH-18 is not echoed)
        codec = "utf-8"
    return "\r".join(segments).encode(codec, errors="replace") + b"\r"


class Ack(msgspec.Struct, frozen=True):
    """A received acknowledgement: MSA-1 code, MSA-2 control id it answers, and the reason text."""

    code: str
    control_id: str
    text: str
    error_code: str = ""
    header: Header | None = None

    @property
    def accepted(self) -> bool:
        """True for AA/CA."""
        return self.code in ("AA", "CA")

    @property
    def reason(self) -> str:
        """A one-line reason for a negative ack, for dead letters and logs."""
        parts = [self.code]
        if self.error_code:
            parts.append(f"{self.error_code} {ERROR_TEXT.get(self.error_code, '')}".strip())
        if self.text:
            parts.append(self.text)
        return ": ".join(parts)


def parse_ack(raw: bytes) -> Ack:
    """Read MSA (and ERR, when present) of an ACK; raises a :class:`ParseError` subclass."""
    segments = split_message(raw)
    header = read_header(segments[0])
    msa = next((s for s in segments if s.name == "MSA"), None)
    if msa is None or not msa.get(1):
        raise MissingField("the acknowledgement has no MSA-1 code", location="MSA^1^1")
    code = msa.get(1).strip().upper()
    if code not in ("AA", "AE", "AR", "CA", "CE", "CR"):
        raise MissingField(f"MSA-1 {code[:4]!r} is not an acknowledgement code", location="MSA^1^1")
    err = next((s for s in segments if s.name == "ERR"), None)
    text = msa.get(3)
    error_code = ""
    if err is not None:
        error_code = err.get(3) or err.get(1, 4)
        text = err.get(8) or err.get(3, 2) or text
    return Ack(code, msa.get(2), text, error_code, header)
