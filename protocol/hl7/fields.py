"""HL7 v2.5.1 field names of the segments mchub receives and sends, and the field tree of a message.

Pure data and pure functions (no I/O): the dashboard's message browser draws the tree, a
test or a log line may name a field (``field_name("PID", 3)`` -> ``"Patient Identifier List"``,
``field_name("PID", 5, "zh-CN")`` -> ``"患者姓名"``). Names are the standard's (HL7 v2.5.1
chapter 2, 3, 4, 5, 7, 8 segment definitions) in English as integration engineers and the HIS
vendors' documents know them, and in zh-CN (:mod:`protocol.hl7.field_names_zh`, same shape).

    tree = field_tree(raw)         # [SegmentNode(name="MSH", fields=[FieldNode(...), ...]), ...]
"""

from __future__ import annotations

import msgspec

from protocol.hl7.encoding import unescape
from protocol.hl7.er7 import split_message
from protocol.hl7.errors import ParseError
from protocol.hl7.field_names_zh import FIELD_NAMES_ZH

#: segment -> names of fields 1..n (index 0 is field 1)
FIELD_NAMES: dict[str, tuple[str, ...]] = {
    "MSH": ("Field Separator", "Encoding Characters", "Sending Application", "Sending Facility",
            "Receiving Application", "Receiving Facility", "Date/Time of Message", "Security", "Message Type",
            "Message Control ID", "Processing ID", "Version ID", "Sequence Number", "Continuation Pointer",
            "Accept Acknowledgment Type", "Application Acknowledgment Type", "Country Code", "Character Set",
            "Principal Language of Message", "Alternate Character Set Handling Scheme", "Message Profile Identifier"),
    "EVN": ("Event Type Code", "Recorded Date/Time", "Date/Time Planned Event", "Event Reason Code", "Operator ID",
            "Event Occurred", "Event Facility"),
    "PID": ("Set ID - PID", "Patient ID", "Patient Identifier List", "Alternate Patient ID - PID", "Patient Name",
            "Mother's Maiden Name", "Date/Time of Birth", "Administrative Sex", "Patient Alias", "Race",
            "Patient Address", "County Code", "Phone Number - Home", "Phone Number - Business",
            "Primary Language", "Marital Status", "Religion", "Patient Account Number",
            "SSN Number - Patient", "Driver's License Number - Patient", "Mother's Identifier", "Ethnic Group",
            "Birth Place", "Multiple Birth Indicator", "Birth Order", "Citizenship", "Veterans Military Status",
            "Nationality", "Patient Death Date and Time", "Patient Death Indicator", "Identity Unknown Indicator",
            "Identity Reliability Code", "Last Update Date/Time", "Last Update Facility", "Species Code",
            "Breed Code", "Strain", "Production Class Code", "Tribal Citizenship"),
    "PV1": ("Set ID - PV1", "Patient Class", "Assigned Patient Location", "Admission Type", "Preadmit Number",
            "Prior Patient Location", "Attending Doctor", "Referring Doctor", "Consulting Doctor",
            "Hospital Service", "Temporary Location", "Preadmit Test Indicator", "Re-admission Indicator",
            "Admit Source", "Ambulatory Status", "VIP Indicator", "Admitting Doctor", "Patient Type",
            "Visit Number", "Financial Class", "Charge Price Indicator", "Courtesy Code", "Credit Rating",
            "Contract Code", "Contract Effective Date", "Contract Amount", "Contract Period", "Interest Code",
            "Transfer to Bad Debt Code", "Transfer to Bad Debt Date", "Bad Debt Agency Code",
            "Bad Debt Transfer Amount", "Bad Debt Recovery Amount", "Delete Account Indicator",
            "Delete Account Date", "Discharge Disposition", "Discharged to Location", "Diet Type",
            "Servicing Facility", "Bed Status", "Account Status", "Pending Location", "Prior Temporary Location",
            "Admit Date/Time", "Discharge Date/Time", "Current Patient Balance", "Total Charges",
            "Total Adjustments", "Total Payments", "Alternate Visit ID", "Visit Indicator",
            "Other Healthcare Provider"),
    "ORC": ("Order Control", "Placer Order Number", "Filler Order Number", "Placer Group Number", "Order Status",
            "Response Flag", "Quantity/Timing", "Parent", "Date/Time of Transaction", "Entered By", "Verified By",
            "Ordering Provider", "Enterer's Location", "Call Back Phone Number", "Order Effective Date/Time",
            "Order Control Code Reason", "Entering Organization", "Entering Device", "Action By",
            "Advanced Beneficiary Notice Code", "Ordering Facility Name", "Ordering Facility Address",
            "Ordering Facility Phone Number", "Ordering Provider Address", "Order Status Modifier",
            "Advanced Beneficiary Notice Override Reason", "Filler's Expected Availability Date/Time",
            "Confidentiality Code", "Order Type", "Enterer Authorization Mode",
            "Parent Universal Service Identifier"),
    "OBR": ("Set ID - OBR", "Placer Order Number", "Filler Order Number", "Universal Service Identifier",
            "Priority - OBR", "Requested Date/Time", "Observation Date/Time", "Observation End Date/Time",
            "Collection Volume", "Collector Identifier", "Specimen Action Code", "Danger Code",
            "Relevant Clinical Information", "Specimen Received Date/Time", "Specimen Source",
            "Ordering Provider", "Order Callback Phone Number", "Placer Field 1", "Placer Field 2",
            "Filler Field 1", "Filler Field 2", "Results Rpt/Status Chng - Date/Time", "Charge to Practice",
            "Diagnostic Serv Sect ID", "Result Status", "Parent Result", "Quantity/Timing", "Result Copies To",
            "Parent", "Transportation Mode", "Reason for Study", "Principal Result Interpreter",
            "Assistant Result Interpreter", "Technician", "Transcriptionist", "Scheduled Date/Time",
            "Number of Sample Containers", "Transport Logistics of Collected Sample", "Collector's Comment",
            "Transport Arrangement Responsibility", "Transport Arranged", "Escort Required",
            "Planned Patient Transport Comment", "Procedure Code", "Procedure Code Modifier",
            "Placer Supplemental Service Information", "Filler Supplemental Service Information",
            "Medically Necessary Duplicate Procedure Reason", "Result Handling",
            "Parent Universal Service Identifier"),
    "OBX": ("Set ID - OBX", "Value Type", "Observation Identifier", "Observation Sub-ID", "Observation Value",
            "Units", "References Range", "Abnormal Flags", "Probability", "Nature of Abnormal Test",
            "Observation Result Status", "Effective Date of Reference Range", "User Defined Access Checks",
            "Date/Time of the Observation", "Producer's ID", "Responsible Observer", "Observation Method",
            "Equipment Instance Identifier", "Date/Time of the Analysis"),
    "SPM": ("Set ID - SPM", "Specimen ID", "Specimen Parent IDs", "Specimen Type", "Specimen Type Modifier",
            "Specimen Additives", "Specimen Collection Method", "Specimen Source Site",
            "Specimen Source Site Modifier", "Specimen Collection Site", "Specimen Role",
            "Specimen Collection Amount", "Grouped Specimen Count", "Specimen Description",
            "Specimen Handling Code", "Specimen Risk Code", "Specimen Collection Date/Time",
            "Specimen Received Date/Time", "Specimen Expiration Date/Time", "Specimen Availability",
            "Specimen Reject Reason", "Specimen Quality", "Specimen Appropriateness",
            "Specimen Condition", "Specimen Current Quantity", "Number of Specimen Containers",
            "Container Type", "Container Condition", "Specimen Child Role"),
    "NTE": ("Set ID - NTE", "Source of Comment", "Comment", "Comment Type"),
    "MSA": ("Acknowledgment Code", "Message Control ID", "Text Message", "Expected Sequence Number",
            "Delayed Acknowledgment Type", "Error Condition"),
    "ERR": ("Error Code and Location", "Error Location", "HL7 Error Code", "Severity", "Application Error Code",
            "Application Error Parameter", "Diagnostic Information", "User Message", "Inform Person Indicator",
            "Override Type", "Override Reason Code", "Help Desk Contact Point"),
    "MRG": ("Prior Patient Identifier List", "Prior Alternate Patient ID", "Prior Patient Account Number",
            "Prior Patient ID", "Prior Visit Number", "Prior Alternate Visit ID", "Prior Patient Name"),
    "PD1": ("Living Dependency", "Living Arrangement", "Patient Primary Facility", "Patient Primary Care Provider",
            "Student Indicator", "Handicap", "Living Will Code", "Organ Donor Code", "Separate Bill",
            "Duplicate Patient", "Publicity Code", "Protection Indicator"),
    "NK1": ("Set ID - NK1", "Name", "Relationship", "Address", "Phone Number", "Business Phone Number",
            "Contact Role", "Start Date", "End Date"),
    "TQ1": ("Set ID - TQ1", "Quantity", "Repeat Pattern", "Explicit Time", "Relative Time and Units",
            "Service Duration", "Start Date/Time", "End Date/Time", "Priority"),
}

MAX_TREE_SEGMENTS = 500  #: segments drawn in a tree (a longer message is cut, and says so)
MAX_VALUE = 2_000  #: characters of one field value kept in a tree


class ComponentNode(msgspec.Struct, frozen=True):
    """One component of a field repetition (1-based position, unescaped value)."""

    position: int
    value: str


class FieldNode(msgspec.Struct, frozen=True):
    """One valued field: ``PID-3``, its standard name (English, zh-CN), raw value, and its components per
    repetition."""

    segment: str
    position: int
    name: str
    raw: str
    repetitions: tuple[tuple[ComponentNode, ...], ...]
    name_zh: str = ""

    @property
    def label(self) -> str:
        """``PID-3``."""
        return f"{self.segment}-{self.position}"


class SegmentNode(msgspec.Struct, frozen=True):
    """One segment with its valued fields (empty fields are left out)."""

    index: int  #: 1-based position in the message
    name: str
    fields: tuple[FieldNode, ...]


class Tree(msgspec.Struct, frozen=True):
    """A message as a tree; ``cut`` when it had more segments than were drawn."""

    segments: tuple[SegmentNode, ...]
    cut: bool = False


def field_name(segment: str, position: int, lang: str = "en") -> str:
    """The standard name of field ``position`` (1-based) of ``segment`` in English or zh-CN; '' when unknown."""
    names = (FIELD_NAMES_ZH if lang == "zh-CN" else FIELD_NAMES).get(segment, ())
    return names[position - 1] if 0 < position <= len(names) else ""


def field_tree(raw: bytes, *, max_segments: int = MAX_TREE_SEGMENTS) -> Tree:
    """Split a message into segments -> valued fields -> repetitions -> components, with names.

    Raises the reader's :class:`~protocol.hl7.errors.ParseError` when the bytes are not
    segments at all (the caller shows the raw text only).
    """
    segments = split_message(raw)
    nodes: list[SegmentNode] = []
    for seg in segments[:max_segments]:
        d = seg.delims
        fields: list[FieldNode] = []
        for n in range(1, len(seg.fields)):
            value = seg.fields[n][:MAX_VALUE]
            if not value:
                continue
            if seg.name == "MSH" and n <= 2:  # the delimiters themselves: no structure
                reps: tuple[tuple[ComponentNode, ...], ...] = ((ComponentNode(1, value),),)
            else:
                reps = tuple(tuple(ComponentNode(i, unescape(c, d, seg.codec))
                                   for i, c in enumerate(rep.split(d.component), 1))
                             for rep in value.split(d.repetition))
            fields.append(FieldNode(seg.name, n, field_name(seg.name, n), value, reps,
                                    field_name(seg.name, n, "zh-CN")))
        nodes.append(SegmentNode(seg.index + 1, seg.name, tuple(fields)))
    return Tree(tuple(nodes), cut=len(segments) > max_segments)


def segment_lines(raw: bytes) -> list[str]:
    """The message as text, one segment per line, decoded in its MSH-18 character set.

    Bytes that are not segments (garbage between frames, a cut message) are shown as UTF-8
    with replacement characters, split at any of CR, LF, CRLF.
    """
    try:
        segments = split_message(raw)
    except ParseError:
        text = raw.decode("utf-8", errors="replace")
        return [line for line in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if line.strip()]
    lines = []
    for seg in segments:
        fs = seg.delims.field
        lines.append(seg.name + fs + fs.join(seg.fields[2:]) if seg.name == "MSH" else fs.join(seg.fields))
    return lines
