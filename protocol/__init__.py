"""Pure protocol code shared by every part of mchub: no I/O, no asyncio.

Modules:
    errors    ProtocolError, the root of every error raised here
    codes     LOINC observation codes, canonical UCUM units, plausible ranges
    units     conversion of device units to canonical units (original kept)
    model     Reading, Observation, Subject and the session records of the sync stream
    batch     compact binary form of a list of records (the body of a sync batch)
    keys      hub signing keys and cloud HPKE recipient keys, key ids
    envelope  the sealed, signed sync batch (see docs/protocol.md)
    ack       the cloud's signed acknowledgement
    idnum     national ID numbers: GB 11643 check digit, masking, blind index
    flags     BP / BMI / temperature classes and observation flags
    ids       UUIDv7 helpers
"""
