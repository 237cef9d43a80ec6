"""Errors raised by ``cloud.dicom``. Every one derives from :class:`DicomError`.

Each error carries what both transports need to answer the sender:

* ``reason`` — a short machine-readable code for logs, metrics and the dashboard;
* ``failure_reason`` — the DICOM status for this instance, used as the STOW-RS
  *Failure Reason* (0008,1197) and as the C-STORE response status (PS3.4 B.2.3,
  PS3.18 §10.5.3);
* ``http_status`` — for errors that reject a whole STOW-RS request (400, 413, 415).

Messages are written for a technician and never contain patient data: no names, and
identifiers only masked.
"""

from __future__ import annotations

from cloud.errors import CloudError

#: PS3.18 Table 10.5.3-1 / PS3.4 Annex B: failure reasons used by this package
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122


class DicomError(CloudError):
    """Root of every error raised by ``cloud.dicom``."""

    reason = "dicom"
    failure_reason = PROCESSING_FAILURE
    http_status = 400


# --- whole-request errors (STOW-RS) -------------------------------------------------


class MultipartError(DicomError):
    """The STOW-RS request body is not a well-formed multipart/related payload."""

    reason = "bad_multipart"
    http_status = 400


class UnsupportedMediaType(MultipartError):
    """The request is not ``multipart/related; type="application/dicom"``."""

    reason = "unsupported_media_type"
    http_status = 415


class PayloadTooLarge(MultipartError):
    """The request body, one part, or the number of parts exceeds a configured limit."""

    reason = "too_large"
    http_status = 413
    failure_reason = OUT_OF_RESOURCES


class Unauthorised(DicomError):
    """The request carries no valid sender credential (STOW-RS) or the association comes from
    a calling AE title / address that is not allowed (C-STORE)."""

    reason = "unauthorised"
    http_status = 401


# --- per-instance errors ------------------------------------------------------------


class NotDicom(DicomError):
    """The bytes are not a DICOM Part 10 file pydicom can read."""

    reason = "not_dicom"
    failure_reason = CANNOT_UNDERSTAND


class MissingAttribute(DicomError):
    """A required attribute (SOP Class/Instance, Study/Series Instance UID) is absent or empty."""

    reason = "missing_attribute"
    failure_reason = DATASET_DOES_NOT_MATCH_SOP_CLASS


class InvalidUid(DicomError):
    """A UID does not follow the UID grammar (PS3.5 §9.1); never used in a path."""

    reason = "invalid_uid"
    failure_reason = DATASET_DOES_NOT_MATCH_SOP_CLASS


class UnsupportedSopClass(DicomError):
    """The SOP class is not one this intake accepts (US, MG, SR, CT)."""

    reason = "unsupported_sop_class"
    failure_reason = SOP_CLASS_NOT_SUPPORTED


class StudyMismatch(DicomError):
    """The instance belongs to another study than the one named in the request URL."""

    reason = "study_mismatch"
    failure_reason = DATASET_DOES_NOT_MATCH_SOP_CLASS


class DuplicateConflict(DicomError):
    """An instance with this SOP Instance UID is already stored with different content."""

    reason = "duplicate_conflict"
    failure_reason = DUPLICATE_SOP_INSTANCE


class StoreError(DicomError):
    """The object directory could not durably store the instance (disk full, permissions)."""

    reason = "store_failed"
    failure_reason = OUT_OF_RESOURCES
    http_status = 503  #: when a whole STOW-RS request cannot be spooled: try again later


class CallbackError(DicomError):
    """The instance was stored but the ``on_indexed`` callback failed; the sender should resend."""

    reason = "index_failed"
    failure_reason = PROCESSING_FAILURE
