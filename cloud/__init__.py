"""The cloud server: ingest, storage, patient index and merge, HL7 in and out, DICOM intake,
MCH uploads, dashboard and admin API. Never imports ``edge``."""
