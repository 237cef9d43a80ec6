"""The cloud server: ingest, storage, patient index and merge, HL7 in and out, DICOM intake,
MCH uploads, dashboard and admin API. Never imports ``edge``.

Folders by job (docs/cloud.md "Where the code lives"): ``intake`` (sync intake), ``db``
(the database layer), ``records`` (patients, encryption at rest), ``fleet`` (hubs and their
keys), ``audit``, ``integration``/``mllp``/``dicom``/``mch`` (the hospital side), ``web``.
"""
