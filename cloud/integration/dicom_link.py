"""DICOM instances -> ``dicom_instances`` rows attached to subjects (the ``on_indexed`` callback).

Called by :class:`cloud.dicom.intake.Intake` for every stored instance, from STOW-RS (any
HTTP worker) and from the C-STORE SCP (the integration owner). In ONE transaction:

* the subject: the national ID found by :func:`cloud.dicom.index.index_dataset` (PatientID
  or OtherPatientIDsSequence with a national-ID issuer, GB 11643-valid) through the blind
  index, creating the subject if needed; else PatientID as an MRN of IssuerOfPatientID
  (learned from ADT); else none, and the instance waits on the unmatched work list;
* the index row (idempotent on SOP Instance UID: a resend changes nothing); the SR text is
  sealed (it can hold names), the BI-RADS category is kept in clear and also written as a
  ``results`` row (``kind = 'birads'``) so it shows with the lab results.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import msgspec

from cloud.db.engine import Database
from cloud.dicom.index import StudyIndex
from cloud.integration import matching
from cloud.integration.matching import Who
from cloud.records.crypto_at_rest import AtRest
from protocol.ids import now_ms

log = logging.getLogger("mchub.cloud.integration.dicom")
_INSERT = (
    "INSERT INTO dicom_instances (sop_instance_uid, study_uid, series_uid, sop_class_uid, family, modality, "
    "laterality, view_position, accession, study_date, issuer, subject_id, path, sr_text_enc, birads, received_ms) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) "
    "ON CONFLICT (sop_instance_uid) DO NOTHING")


def who_of(index: StudyIndex) -> Who:
    """The patient keys of an indexed instance."""
    nid = matching.valid_national_id(index.national_id)
    mrn = "" if nid is not None and index.national_id_source == "PatientID" else index.patient_id
    birth = index.patient_birth_date.strftime("%Y%m%d") if index.patient_birth_date else ""
    return Who(national_id=nid, mrn=mrn, mrn_authority=index.issuer_of_patient_id, name=index.display_name,
               sex=index.patient_sex, birth_date=birth)


class DicomLink:
    """The ``on_indexed`` callback; :meth:`bind` gives it the worker's database once it is open."""

    def __init__(self) -> None:
        self.db: Database | None = None
        self.at_rest: AtRest | None = None

    def bind(self, db: Database, at_rest: AtRest) -> None:
        """Use this database and these keys from now on."""
        self.db, self.at_rest = db, at_rest

    async def __call__(self, index: StudyIndex, path: Path) -> None:
        """Record one stored instance (raises if the database is not bound or fails: the sender resends)."""
        if self.db is None or self.at_rest is None:
            raise RuntimeError("DICOM intake is not connected to the database yet")
        at_rest, who = self.at_rest, who_of(index)
        ref = index.sop_instance_uid
        async with self.db.transaction() as tx:
            if await tx.fetchval("SELECT 1 FROM dicom_instances WHERE sop_instance_uid = $1", ref) is not None:
                return  # an identical resend: already indexed
            sid = await matching.find(tx, at_rest, who)
            sr = at_rest.seal(index.sr_text, "dicom_instances.sr_text") if index.sr_text else None
            date = index.study_date.isoformat() if index.study_date else None
            await tx.execute(_INSERT, ref, index.study_instance_uid, index.series_instance_uid, index.sop_class_uid,
                             index.family, index.modality, index.laterality, index.view_position,
                             index.accession_number, date, index.issuer_of_patient_id, sid, str(path), sr,
                             index.birads, now_ms())
            if index.birads:
                observed = None if index.study_date is None else int(
                    dt.datetime.combine(index.study_date, dt.time(), dt.UTC).timestamp() * 1000)
                payload = msgspec.json.encode({"modality": index.modality, "study_uid": index.study_instance_uid,
                                               "source": index.birads_source}).decode()
                await tx.execute(
                    "INSERT INTO results (subject_id, source, source_key, kind, code, value, unit, observed_ms, "
                    "payload, created_ms, origin) VALUES ($1, 'dicom', $2, 'birads', 'BI-RADS', $3, '', $4, $5, $6, "
                    "$7) ON CONFLICT (source_key) DO NOTHING", sid, f"dicom:{ref}:birads", index.birads, observed,
                    payload, now_ms(),
                    f"dicom:{ref}")
            if sid is None:
                await matching.add_unmatched(tx, "dicom", ref, who, at_rest,
                                             f"{index.family} {index.modality} study {index.study_instance_uid}")
        log.info("DICOM %s indexed (%s)", ref, f"subject {sid}" if sid is not None else "unmatched")
