"""Errors raised by ``protocol.hl7``. Every one derives from :class:`Hl7Error`.

Each error knows how a receiver should answer it: ``ack_code`` is the original-mode
acknowledgement (``AE`` application error or ``AR`` rejected), ``hl7_code`` the HL7
table 0357 error code for ERR-3, ``location`` the ERR-2 location (``OBX^3^5``) when one
field is to blame, and ``reason`` a short stable machine-readable code. Messages are
written for an integration technician and never contain patient data.
"""

from __future__ import annotations

from typing import Literal

from protocol.errors import ProtocolError

AckCode = Literal["AE", "AR"]


class Hl7Error(ProtocolError):
    """Root of every HL7 v2 / MLLP error."""

    reason = "hl7"
    ack_code: AckCode = "AE"
    hl7_code = "207"  #: application internal error

    def __init__(self, message: str, *, location: str = "") -> None:
        super().__init__(message)
        self.location = location


class FramingError(Hl7Error):
    """MLLP framing could not be applied (a message containing a frame byte)."""

    reason = "framing"
    ack_code: AckCode = "AR"


class ParseError(Hl7Error):
    """A message could not be read as ER7 (pipe-and-hat) HL7 v2."""

    reason = "parse"
    hl7_code = "100"  #: segment sequence error


class NotHl7(ParseError):
    """The bytes do not start with an MSH segment with valid encoding characters."""

    reason = "not_hl7"
    ack_code: AckCode = "AR"


class CharsetError(ParseError):
    """MSH-18 names a character set we do not support, or the bytes do not decode in it."""

    reason = "charset"
    ack_code: AckCode = "AR"
    hl7_code = "102"  #: data type error


class UnknownCharset(CharsetError):
    """MSH-18 names a character set that is not in HL7 table 0211 nor a known vendor spelling."""

    reason = "unknown_charset"
    ack_code: AckCode = "AE"
    hl7_code = "103"  #: table value not found


class MissingField(ParseError):
    """A field we rely on is empty."""

    reason = "required_field_missing"
    hl7_code = "101"


class BadValue(ParseError):
    """A field we rely on holds a value of the wrong type or outside its table."""

    reason = "data_type_error"
    hl7_code = "102"


class UnsupportedMessage(Hl7Error):
    """A message type or trigger event this receiver does not process."""

    reason = "unsupported_message_type"
    ack_code: AckCode = "AR"
    hl7_code = "200"


class UnsupportedVersion(Hl7Error):
    """MSH-12 names a version that is not HL7 v2.x."""

    reason = "unsupported_version"
    ack_code: AckCode = "AR"
    hl7_code = "203"


class UnsupportedProcessingId(Hl7Error):
    """MSH-11 is not P (production), T (training) or D (debugging)."""

    reason = "unsupported_processing_id"
    ack_code: AckCode = "AR"
    hl7_code = "202"


class BuildError(Hl7Error):
    """An outbound message cannot be built from the given records."""

    reason = "build"


class CodeMapError(Hl7Error):
    """The local-code mapping table in the configuration is unusable."""

    reason = "code_map"


class SenderRefused(Hl7Error):
    """The receiver does not take messages from this sending application (its allow-list)."""

    reason = "sender_not_allowed"
    ack_code: AckCode = "AR"


class MessageTooLarge(Hl7Error):
    """A message longer than the receiver's configured limit (its head is kept for inspection)."""

    reason = "too_large"
    ack_code: AckCode = "AR"
