"""A small typed view of the HL7 v2 messages mchub reads: MSH, PID, MRG, OBR/OBX groups.

:func:`parse` is tolerant about everything it does not use and strict about everything
it does: a field we rely on that is missing or malformed raises a typed error naming
its location (``OBX^7^5``), so the receiver can answer AE/AR with a reason instead of
storing a half-understood result. Only the fields below are read; the whole message
stays available as :attr:`Message.segments`.
"""

from __future__ import annotations

import math

import msgspec

from protocol.hl7.encoding import Delimiters, unescape
from protocol.hl7.er7 import Segment, split_message
from protocol.hl7.errors import (
    BadValue,
    MissingField,
    ParseError,
    UnsupportedMessage,
    UnsupportedProcessingId,
    UnsupportedVersion,
)

#: message types and trigger events the inbound listener processes
INBOUND: dict[str, frozenset[str]] = {
    "ORU": frozenset({"R01"}),
    "ADT": frozenset({"A01", "A04", "A08", "A40"}),
}
VALUE_TYPES = frozenset({"NM", "ST", "CWE", "CE", "CNE", "TX", "FT", "SN", "DT", "DTM", "TS", "ID", "IS", "TM"})
RESULT_STATUSES = frozenset("CDFINOPRSUWX")  #: HL7 table 0085


class Coded(msgspec.Struct, frozen=True):
    """A CE/CWE value: identifier, text, coding system, and the alternate triplet."""

    code: str
    text: str = ""
    system: str = ""
    alt_code: str = ""
    alt_text: str = ""
    alt_system: str = ""


class Header(msgspec.Struct, frozen=True):
    """The MSH fields a receiver needs to route, deduplicate and acknowledge a message."""

    delimiters: Delimiters
    sending_app: str
    sending_facility: str
    receiving_app: str
    receiving_facility: str
    sent_at: str  #: MSH-7, as sent
    message_type: str  #: MSH-9.1, e.g. ORU
    trigger_event: str  #: MSH-9.2, e.g. R01
    structure: str  #: MSH-9.3, e.g. ORU_R01 (often empty)
    control_id: str  #: MSH-10
    processing_id: str  #: MSH-11.1
    version: str  #: MSH-12.1
    accept_ack: str  #: MSH-15 (AL/NE/ER/SU or empty)
    app_ack: str  #: MSH-16
    charset: str  #: MSH-18 first repetition, as sent

    @property
    def sender(self) -> str:
        """``app|facility``: with MSH-10 the duplicate-detection key of a message."""
        return f"{self.sending_app}|{self.sending_facility}"

    @property
    def enhanced(self) -> bool:
        """True when MSH-15 or MSH-16 is valued: enhanced acknowledgement mode."""
        return bool(self.accept_ack or self.app_ack)


class PatientId(msgspec.Struct, frozen=True):
    """One CX identifier: value, assigning authority (HD namespace) and identifier type."""

    id: str
    authority: str = ""
    type_code: str = ""  #: HL7 table 0203: MR, NNCHN (Chinese resident ID), PI, VN, ...


class Patient(msgspec.Struct, frozen=True):
    """PID: identifiers (PID-3 repetitions, then PID-2 and PID-4 when present) and demographics."""

    identifiers: tuple[PatientId, ...]
    family_name: str = ""
    given_name: str = ""
    birth_date: str = ""  #: PID-7 as sent
    sex: str = ""  #: PID-8 (HL7 table 0001: F, M, O, U, ...)

    def first(self, *type_codes: str) -> PatientId | None:
        """The first identifier whose type is one of ``type_codes``."""
        return next((i for i in self.identifiers if i.type_code in type_codes), None)


class Obx(msgspec.Struct, frozen=True):
    """One OBX: a coded observation with its value(s), units, range, flags, status and time."""

    set_id: str
    value_type: str
    code: Coded
    sub_id: str
    values: tuple[str, ...]  #: OBX-5 repetitions, unescaped text (coded values: their ER7 text)
    coded: tuple[Coded, ...]  #: OBX-5 repetitions read as CWE/CE when the value type is coded
    numeric: float | None  #: the number, for NM (and SN without a range)
    units: Coded
    reference_range: str
    flags: tuple[str, ...]  #: OBX-8 repetitions (N, L, H, LL, HH, A, ...)
    status: str  #: OBX-11
    observed_at: str  #: OBX-14 as sent


class Order(msgspec.Struct, frozen=True):
    """One OBR with the OBX segments that follow it."""

    set_id: str
    placer: str
    filler: str
    service: Coded
    observed_at: str  #: OBR-7
    status: str  #: OBR-25
    observations: tuple[Obx, ...]


class Message(msgspec.Struct, frozen=True):
    """A parsed inbound message: the typed fields mchub uses plus every segment."""

    header: Header
    patient: Patient | None
    orders: tuple[Order, ...]
    merge_prior: tuple[PatientId, ...]  #: MRG-1 (ADT^A40): the identifiers being merged away
    segments: tuple[Segment, ...]


_EMPTY = Coded("")


def coded(seg: Segment, n: int, rep: int = 0) -> Coded:
    """Field ``n`` (repetition ``rep``) read as a CE/CWE."""
    value = seg.fields[n] if n < len(seg.fields) else ""
    if not value:
        return _EMPTY
    d = seg.delims
    if rep or d.repetition in value:
        reps = value.split(d.repetition)
        value = reps[rep] if rep < len(reps) else ""
    c = value.split(d.component)
    if d.escape in value:
        c = [unescape(x, d, seg.codec) for x in c]
    if len(c) < 6:
        c += _PAD[len(c)]
    return Coded(c[0], c[1], c[2], c[3], c[4], c[5])


_PAD = [[""] * (6 - i) for i in range(7)]


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
            if order is None:
                if header.message_type == "ORU":
                    raise ParseError("OBX before any OBR", location=seg.location(1))
                continue
            order[1].append(read_obx(seg))
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
    if header.message_type in ("ORU", "ADT") and patient is None:
        raise MissingField(f"{header.message_type} message without a PID segment", location="PID")
    if header.message_type == "ORU" and not orders:
        raise MissingField("ORU^R01 without an OBR segment", location="OBR")
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


def read_obx(seg: Segment) -> Obx:
    """OBX view with the checks on value type, code, number and status."""
    get = seg.get
    vt = get(2).strip().upper()
    code = coded(seg, 3)
    if not code.code and not code.alt_code:
        raise MissingField("OBX-3 (observation identifier) is empty", location=seg.location(3))
    reps = seg.repetitions(5)
    if reps and not vt:
        raise MissingField("OBX-2 (value type) is empty although OBX-5 holds a value", location=seg.location(2))
    if vt and vt not in VALUE_TYPES:
        raise BadValue(f"OBX-2 value type {vt[:8]!r} is not supported", location=seg.location(2))
    status = get(11).strip().upper()
    if status not in RESULT_STATUSES:
        raise (MissingField if not status else BadValue)(
            f"OBX-11 result status {status[:4]!r} is not in HL7 table 0085", location=seg.location(11))
    values: tuple[str, ...] = ()
    codes: tuple[Coded, ...] = ()
    if len(reps) == 1 and vt in _SIMPLE:
        values = (get(5),)
    elif vt in ("CWE", "CE", "CNE"):
        codes = tuple(coded(seg, 5, i) for i in range(len(reps)))
        values = tuple(c.code or c.text for c in codes)
    elif vt in ("TX", "FT", "ST"):  # a stray component separator in free text is kept
        values = tuple(seg.delims.component.join(seg.components(5, i)) for i in range(len(reps)))
    elif reps:
        values = tuple(get(5, 1, rep=i) if vt != "SN" else "".join(seg.components(5, i)) for i in range(len(reps)))
    numeric = _number(seg, values, vt) if vt in ("NM", "SN") else None
    if seg.delims.repetition in seg.raw(8):
        flags = tuple(f for f in (get(8, rep=i).strip() for i in range(len(seg.repetitions(8)))) if f)
    else:
        flag = get(8).strip()
        flags = (flag,) if flag else ()
    return Obx(get(1), vt, code, get(4), values, codes, numeric, coded(seg, 6),
               get(7), flags, status, get(14))


_SIMPLE = frozenset({"NM", "DT", "DTM", "TS", "ID", "IS", "TM"})


def _number(seg: Segment, values: tuple[str, ...], vt: str) -> float | None:
    if vt == "SN":  # comparator ^ num1 ^ separator/suffix ^ num2: only a plain "=n" is a number
        parts = [*seg.components(5), "", "", "", ""]
        if parts[0] not in ("", "=") or parts[2] or parts[3]:
            return None
        text = parts[1].strip()
    elif vt == "NM":
        text = values[0].strip() if values else ""
    else:
        return None
    if not text:
        return None
    try:
        number = float(text)
    except ValueError:
        raise BadValue(f"OBX-5 {text[:20]!r} is not a number although OBX-2 is {vt}",
                       location=seg.location(5)) from None
    if not math.isfinite(number):
        raise BadValue("OBX-5 is not a finite number", location=seg.location(5))
    return number
