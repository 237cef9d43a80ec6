"""Hospital integration in the cloud: HL7 v2 in and out over MLLP, DICOM intake, merge into the record.

Modules:
    schema     migration 4: hl7_inbound, subject_identifiers, unmatched work list, dicom_instances,
               the ``visit.closed`` -> ``his.vitals`` outbox trigger
    matching   subject lookup by national ID (blind index) or HIS MRN; identifiers learned from ADT
    lookups    the same rules for a group of HL7 messages in one transaction, with few round trips
    inbound    stored HL7 messages -> ``results`` rows and identifiers; A40 merges; late ADT resolution
    dicom_link DICOM instances -> ``dicom_instances`` rows matched to subjects
    vitals     outbound: a closed session -> ORU^R01 over MLLP from the transactional outbox
    service    starts/stops the MLLP listener, the processor, the HIS dispatcher and the DICOM SCP
    api        ``/integration/v1``: unmatched work list, resolve, replay (admin bearer token)
The dashboard reads through :mod:`cloud.integration.queries`.
"""
