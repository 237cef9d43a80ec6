"""Errors raised by ``protocol``. Every one derives from :class:`ProtocolError`.

Callers at a boundary (HTTP handler, driver, CLI) catch ``ProtocolError`` and report
``str(error)``; the message is written for a technician and never contains patient data.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Root of every error raised by the ``protocol`` package."""


class EnvelopeError(ProtocolError):
    """A sealed sync batch could not be accepted."""

    #: short machine-readable reason, used in metrics, audit entries and HTTP answers
    reason = "envelope"


class MalformedEnvelope(EnvelopeError):
    """Wrong magic, truncated, or a length field that does not fit."""

    reason = "malformed"


class UnsupportedVersion(EnvelopeError):
    """The batch names a format version this code does not speak."""

    reason = "unsupported_version"


class UnknownSuite(EnvelopeError):
    """The batch names a crypto suite this code does not know."""

    reason = "unknown_suite"


class BadSignature(EnvelopeError):
    """The Ed25519 signature does not verify with the expected key."""

    reason = "bad_signature"


class WrongRecipient(EnvelopeError):
    """The batch was sealed to a cloud key this server does not hold."""

    reason = "wrong_recipient"


class TamperedCiphertext(EnvelopeError):
    """HPKE decryption failed although the signature verified."""

    reason = "tampered_ciphertext"


class BodyTooLarge(EnvelopeError):
    """The body, sealed or decompressed, exceeds the configured limit."""

    reason = "too_large"


class BadBody(EnvelopeError):
    """The decrypted body is not a valid list of records."""

    reason = "bad_body"


class AckError(ProtocolError):
    """A cloud acknowledgement is malformed, unsigned or does not match its batch."""


class IdNumberError(ProtocolError, ValueError):
    """A national ID number failed validation."""


class UnitError(ProtocolError, ValueError):
    """A unit is unknown or cannot be converted to the canonical unit of a code."""


class ClinicalError(ProtocolError, ValueError):
    """Patient context that cannot be judged (e.g. 45 pregnancy weeks); ``key`` names the catalog text."""

    def __init__(self, message: str, key: str = "clinical.invalid") -> None:
        super().__init__(message)
        self.key = key


class ReferenceTableError(ProtocolError):
    """A clinical reference table is missing or malformed: a packaging fault, not bad input."""
