"""HL7 v2 over MLLP for the cloud: listener, stores, sender, outbox, processing.

Modules:
    errors       MllpError and subclasses (StoreError, SendError: AckTimeout, PeerUnavailable, NegativeAck)
    store        MessageStore protocol, InboundMeta/StoreResult, GroupCommitter
    pg_store     PostgreSQL store (asyncpg), group commit, DDL for ``hl7_inbound``
    sqlite_store SQLite store for the embedded deployment
    server       MllpListener: checks each frame, ACK per message after a durable store
    connection   MllpConnection (asyncio Protocol): frames in, ACKs out in order, back-pressure
    client       MllpSender: ACK wait, resend with the same control id, reconnect
    outbox       ``hl7_outbound`` transactional outbox of vitals ORU^R01 and its delivery worker
    processing   stored message -> LabResult / PatientKeys (persisting them is the caller's)
"""
