"""One instance in: read, index, store, tell the application. Shared by STOW-RS and C-STORE.

Both transports hand :class:`Intake` a Part 10 file (C-STORE's data set is framed
with :func:`~cloud.dicom.part10.build_part10` first), so both follow one code path:

1. walk the file meta header (:func:`~cloud.dicom.part10.split_part10`);
2. ``pydicom.dcmread(..., force=False)`` — pydicom's errors are wrapped in
   :class:`~cloud.dicom.errors.NotDicom`;
3. :func:`~cloud.dicom.index.index_dataset`; in a study-scoped STOW request the study
   must match the URL;
4. re-frame with our deterministic meta header and store atomically
   (:class:`~cloud.dicom.objects.ObjectStore`);
5. ``await on_indexed(index, path)`` — wired by the application to the database and
   patient index. It is also called for an identical resend, so a sender retrying after a
   failed callback completes the indexing: **the callback must be idempotent on the SOP
   Instance UID**. If it raises, the instance stays stored and the sender is told
   "processing failure" (0x0110) so that it resends.

Every refused instance is kept under ``rejected/`` with its reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from cloud.dicom.errors import CallbackError, DicomError, DuplicateConflict, NotDicom, StudyMismatch
from cloud.dicom.index import NATIONAL_ID_ISSUERS, StudyIndex, index_dataset
from cloud.dicom.objects import ObjectStore, StoredObject
from cloud.dicom.part10 import build_part10, split_part10

log = logging.getLogger(__name__)

OnIndexed = Callable[[StudyIndex, Path], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one instance: stored (``error is None``) or refused with a reason."""

    sop_class_uid: str
    sop_instance_uid: str
    index: StudyIndex | None = None
    stored: StoredObject | None = None
    error: DicomError | None = None


def read_dataset(data: bytes) -> pydicom.Dataset:
    """``dcmread`` a Part 10 file from memory, pydicom's errors wrapped in :class:`NotDicom`."""
    try:
        return pydicom.dcmread(BytesIO(data), force=False)
    except InvalidDicomError as exc:
        raise NotDicom(f"not a DICOM Part 10 file: {exc}") from exc
    except Exception as exc:  # pydicom raises many types on hostile bytes; none may escape
        raise NotDicom(f"pydicom could not read the file ({type(exc).__name__}: {exc})") from exc


class Intake:
    """Read, index and store instances into ``store``; report each to ``on_indexed``."""

    def __init__(
        self,
        store: ObjectStore,
        on_indexed: OnIndexed | None = None,
        national_id_issuers: frozenset[str] = NATIONAL_ID_ISSUERS,
    ) -> None:
        self.store = store
        self.on_indexed = on_indexed
        self.national_id_issuers = national_id_issuers

    def store_file(self, data: bytes, expected_study: str | None = None) -> tuple[StudyIndex, StoredObject]:
        """Steps 1-4 (blocking: parsing and fsync); raises :class:`DicomError`."""
        meta = split_part10(data)
        ds = read_dataset(data)
        try:
            index = index_dataset(ds, self.national_id_issuers)
        except DicomError:
            raise
        except Exception as exc:  # a value pydicom cannot convert, deep in the data set
            raise NotDicom(f"an attribute could not be decoded ({type(exc).__name__}: {exc})") from exc
        if expected_study is not None and index.study_instance_uid != expected_study:
            raise StudyMismatch(
                f"instance belongs to study {index.study_instance_uid}, the request names {expected_study}"
            )
        if meta.sop_instance_uid and meta.sop_instance_uid != index.sop_instance_uid:
            note = "file meta Media Storage SOP Instance UID differs from the data set's SOP Instance UID"
            index = dataclasses.replace(index, warnings=(*index.warnings, note))
        framed = build_part10(
            index.sop_class_uid, index.sop_instance_uid, meta.transfer_syntax_uid, data[meta.dataset_offset :]
        )
        stored = self.store.put(index.study_instance_uid, index.series_instance_uid, index.sop_instance_uid, framed)
        return index, stored

    def _refused(self, data: bytes, error: DicomError, sop_class: str = "", sop_instance: str = "") -> Outcome:
        log.warning("DICOM instance refused (%s): %s", error.reason, error)
        if not isinstance(error, DuplicateConflict):  # that one is already kept by the store
            self.store.quarantine(data, f"{error.reason}: {error}")
        return Outcome(sop_class, sop_instance, error=error)

    async def receive(self, data: bytes, expected_study: str | None = None) -> Outcome:
        """Process one Part 10 file from an asyncio context (parsing runs in a worker thread)."""
        try:
            index, stored = await asyncio.to_thread(self.store_file, data, expected_study)
        except DicomError as exc:
            sop_class, sop_instance = _uids_if_readable(data)
            # keeping the refused bytes writes and fsyncs a file: never on the event loop
            return await asyncio.to_thread(self._refused, data, exc, sop_class, sop_instance)
        return await self._notify(index, stored)

    async def _notify(self, index: StudyIndex, stored: StoredObject) -> Outcome:
        log.info("DICOM %s %s", "stored" if stored.created else "duplicate (identical)", index.log_summary())
        if self.on_indexed is not None:
            try:
                await self.on_indexed(index, stored.path)
            except Exception as exc:  # the application's failure must become a status, not a crash
                log.exception("on_indexed failed for %s", index.sop_instance_uid)
                error = CallbackError(f"stored as {stored.path.name} but indexing failed: {type(exc).__name__}")
                return Outcome(index.sop_class_uid, index.sop_instance_uid, index, stored, error)
        return Outcome(index.sop_class_uid, index.sop_instance_uid, index, stored)

    def receive_blocking(self, data: bytes, loop: asyncio.AbstractEventLoop | None, timeout: float = 60.0) -> Outcome:
        """Process one file from a worker thread (the C-STORE SCP); the callback runs on ``loop``."""
        try:
            index, stored = self.store_file(data)
        except DicomError as exc:
            sop_class, sop_instance = _uids_if_readable(data)
            return self._refused(data, exc, sop_class, sop_instance)
        if loop is None:
            return Outcome(index.sop_class_uid, index.sop_instance_uid, index, stored)
        future = asyncio.run_coroutine_threadsafe(self._notify(index, stored), loop)
        try:
            return future.result(timeout)
        except Exception as exc:  # the loop is closed or the callback timed out
            future.cancel()
            error = CallbackError(f"stored as {stored.path.name} but indexing did not finish: {type(exc).__name__}")
            return Outcome(index.sop_class_uid, index.sop_instance_uid, index, stored, error)


def _uids_if_readable(data: bytes) -> tuple[str, str]:
    """SOP Class/Instance UID for a failure report, from the file meta header if it parses."""
    try:
        meta = split_part10(data)
    except DicomError:
        return "", ""
    return meta.sop_class_uid, meta.sop_instance_uid
