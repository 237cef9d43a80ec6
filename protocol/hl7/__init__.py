"""HL7 v2 over MLLP, pure (no I/O): framing, a fast tolerant ER7 reader, ACKs, the vitals ORU.

Modules:
    errors    Hl7Error (a ProtocolError) and its subclasses; each knows its AE/AR answer
    mllp      MLLP frames: encode, StreamDecoder (split/merged reads, garbage, size limit)
    encoding  delimiters from MSH-1/2, escape sequences, MSH-18 character sets
    er7       bytes -> segments of fields, split lazily (the hot path)
    view      the typed view: Header (MSH), Patient (PID), Order (OBR), Obx, Coded
    obx       OBX/CE reading with its checks, and a fast path for plain segments
    message   parse() -> Message, check() -> Header (same checks, no view), parse_header()
    ack       which ack a message gets (original/enhanced mode), build_ack, parse_ack
    dtm       HL7 timestamps
    oru       ORU^R01 v2.5.1 vitals from a station session (VitalsReport)
    codemap   local lab codes -> LOINC from configuration
"""
