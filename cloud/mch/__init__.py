"""Maternal-and-child-health records: screening cases, child growth checks, prenatal visits.

    sources    results rows (HL7, DICOM) -> evidence for screening cases
    vitals     hub visits -> prenatal visits and child growth checks (growth: WHO 2006)
    assembler  rebuild a subject's cases from data; change-feed sweep; resumable backfill
    store      cases and versioned upload records (migration 5: schema), corrections
    followups  follow-up tasks and the notifier
    uploader   the mch.upload outbox topic -> the platform (client: signed HTTP)
    queries    read functions for the dashboard and the CLI; registers: CSV/XLSX tables
    service    the background jobs a cloud worker runs when [mch] enabled
    cli        ``mchub cloud mch ...``

See docs/mch.md.
"""
