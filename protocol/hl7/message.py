"""A small typed view of the HL7 v2 messages mchub reads: MSH, PID, MRG, OBR/OBX groups.

:func:`parse` is tolerant about everything it does not use and strict about everything
it does: a field we rely on that is missing or malformed raises a typed error naming
its location (``OBX^7^5``), so the receiver can answer AE/AR with a reason instead of
storing a half-understood result. Only the fields below are read; the whole message
stays available as :attr:`Message.segments`.
"""

from __future__ import annotations

from protocol.hl7.er7 import Segment, split_message
from protocol.hl7.errors import (
    BadValue,
    MissingField,
    ParseError,
    UnsupportedMessage,
    UnsupportedProcessingId,
    UnsupportedVersion,
)
from protocol.hl7.obx import RESULT_STATUSES, VALUE_TYPES, check_obx, coded, read_obx
from protocol.hl7.view import Coded, Header, Message, Obx, Order, Patient, PatientId

__all__ = [
    "INBOUND", "RESULT_STATUSES", "RESULT_TYPES", "VALUE_TYPES", "Coded", "Header", "Message", "Obx", "Order",
    "Patient", "PatientId",
    "check", "parse", "parse_header", "read_header", "read_obx", "read_patient",
]

#: message types and trigger events the inbound listener processes
INBOUND: dict[str, frozenset[str]] = {
    "ORU": frozenset({"R01"}),
    "OUL": frozenset({"R22", "R24"}),  #: specimen-/order-grouped lab results (many Chinese LIS products)
    "ADT": frozenset({"A01", "A04", "A08", "A40"}),
}
#: message types whose OBR/OBX groups are results
RESULT_TYPES = frozenset({"ORU", "OUL"})


def patient_ids(seg: Segment, n: int) -> list[PatientId]:
    """Every repetition of the CX field ``n``."""
    out = []
    for rep in range(len(seg.repetitions(n))):
        value = seg.get(n, 1, rep=rep)
        if value:
            out.append(PatientId(value, seg.get(n, 4, rep=rep), seg.get(n, 5, rep=rep)))
    return out


def read_header(msh: Segment) -> Header:
    """The MSH view; checks MSH-9, -10, -11 and -12, which every receiver needs."""
    h = Header(
        msh.delims, msh.get(3), msh.get(4), msh.get(5), msh.get(6), msh.get(7),
        msh.get(9, 1).strip().upper(), msh.get(9, 2).strip().upper(), msh.get(9, 3).strip(),
        msh.get(10).strip(), msh.get(11).strip().upper(), msh.get(12).strip(),
        msh.get(15).strip().upper(), msh.get(16).strip().upper(), msh.get(18).strip(),
    )
    if not h.control_id:
        raise MissingField("MSH-10 (message control id) is empty", location="MSH^1^10")
    if len(h.control_id) > 199:
        raise BadValue("MSH-10 (message control id) is longer than 199 characters", location="MSH^1^10")
    if not h.message_type:
        raise MissingField("MSH-9 (message type) is empty", location="MSH^1^9")
    if not h.version.startswith("2."):
        raise UnsupportedVersion(f"MSH-12 version {h.version[:12]!r} is not HL7 v2.x", location="MSH^1^12")
    if h.processing_id not in ("P", "T", "D"):
        raise UnsupportedProcessingId(f"MSH-11 processing id {h.processing_id[:8]!r} is not P, T or D",
                                      location="MSH^1^11")
    for n, value in ((15, h.accept_ack), (16, h.app_ack)):
        if value not in ("", "AL", "NE", "ER", "SU"):
            raise BadValue(f"MSH-{n} {value[:8]!r} is not AL, NE, ER or SU", location=f"MSH^1^{n}")
    return h


def parse_header(raw: bytes) -> Header:
    """Only the MSH of ``raw`` (used to acknowledge a message whose body failed to parse)."""
    return read_header(split_message(raw)[0])


def parse(raw: bytes, supported: dict[str, frozenset[str]] | None = INBOUND) -> Message:
    """Parse and check one message; ``supported=None`` accepts any message type."""
    return _read(raw, supported, build=True)


def check(raw: bytes, supported: dict[str, frozenset[str]] | None = INBOUND) -> Header:
    """Every check :func:`parse` makes, building only the header (the listener's hot path)."""
    return _read(raw, supported, build=False).header


def _read(raw: bytes, supported: dict[str, frozenset[str]] | None, build: bool) -> Message:
    segments = split_message(raw)
    header = read_header(segments[0])
    if supported is not None and header.trigger_event not in supported.get(header.message_type, ()):
        raise UnsupportedMessage(f"message type {header.message_type}^{header.trigger_event} is not processed "
                                 f"here (accepted: {_names(supported)})", location="MSH^1^9")
    patient: Patient | None = None
    orders: list[Order] = []
    prior: list[PatientId] = []
    order: tuple[Segment, list[Obx]] | None = None
    for seg in segments[1:]:
        name = seg.name
        if name == "OBX":
            if order is None:  # OUL: an observation on the specimen (SPM) or patient, not a result
                if header.message_type == "ORU":
                    raise ParseError("OBX before any OBR", location=seg.location(1))
                continue
            if build:
                order[1].append(read_obx(seg))
            else:
                check_obx(seg)
        elif name == "SPM" and header.trigger_event == "R22":
            # OUL^R22 groups by specimen: SPM [OBX...] then its orders; the OBX right after an SPM
            # describe the specimen. (In R24 the SPM sits inside an order and its results follow.)
            if order is not None:
                orders.append(_order(*order))
            order = None
        elif name == "OBR":
            if order is not None:
                orders.append(_order(*order))
            order = (seg, [])
        elif name == "PID":
            if patient is not None:
                raise ParseError("more than one PID segment (one patient per message)", location=seg.location(1))
            patient = read_patient(seg)
        elif name == "MRG":
            prior = patient_ids(seg, 1)
        elif name == "MSH":
            raise ParseError("a second MSH in one frame (send batches as separate messages)",
                             location=seg.location(1))
    if order is not None:
        orders.append(_order(*order))
    if header.message_type in ("ORU", "OUL", "ADT") and patient is None:
        raise MissingField(f"{header.message_type} message without a PID segment", location="PID")
    if header.message_type in RESULT_TYPES and not orders:
        raise MissingField(f"{header.message_type}^{header.trigger_event} without an OBR segment", location="OBR")
    if header.trigger_event == "A40" and not prior:
        raise MissingField("ADT^A40 without prior identifiers in MRG-1", location="MRG^1^1")
    return Message(header, patient, tuple(orders), tuple(prior), tuple(segments))


def _names(supported: dict[str, frozenset[str]]) -> str:
    return ", ".join(f"{t}^{e}" for t, events in sorted(supported.items()) for e in sorted(events))


def read_patient(seg: Segment) -> Patient:
    """PID view; PID-3 must hold at least one identifier."""
    ids = patient_ids(seg, 3)
    if not ids:
        raise MissingField("PID-3 (patient identifier list) is empty", location=seg.location(3))
    ids += patient_ids(seg, 2) + patient_ids(seg, 4)
    return Patient(tuple(ids), seg.get(5, 1), seg.get(5, 2), seg.get(7), seg.get(8))


def _order(seg: Segment, obx: list[Obx]) -> Order:
    return Order(seg.get(1), seg.get(2), seg.get(3), coded(seg, 4), seg.get(7), seg.get(25), tuple(obx))


