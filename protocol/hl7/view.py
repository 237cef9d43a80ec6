"""The typed view of an inbound HL7 v2 message (msgspec Structs: cheap to build, immutable)."""

from __future__ import annotations

import msgspec

from protocol.hl7.encoding import Delimiters
from protocol.hl7.er7 import Segment


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
