"""HL7 v2 over MLLP for the cloud: listener, store, sender, processing.

Modules:
    errors       MllpError and subclasses (StoreError, SendError: AckTimeout, PeerUnavailable, NegativeAck)
    store        MessageStore protocol, InboundMeta/StoreResult, GroupCommitter
    db_store     Hl7Store: ``hl7_inbound`` in the cloud database (PostgreSQL or SQLite), group commit
    server       MllpListener: checks each frame, ACK per message after a durable store
    connection   MllpConnection (asyncio Protocol): frames in, ACKs out in order, back-pressure
    client       MllpSender: ACK wait, resend with the same control id, reconnect
    processing   stored message -> LabResult / PatientKeys (persisted by cloud.integration.inbound)

Vitals to the HIS go through the cloud's transactional outbox (cloud/outbox.py, topic
``his.vitals``; cloud.integration.vitals). The listener runs inside ``mchub cloud serve``
or ``mchub cloud integrate`` (cloud.integration.service).
"""
