"""OBX and CE/CWE reading: the inner loop of result messages, with a fast path.

Most real OBX segments hold no repetition, escape or subcomponent character; for those
(:attr:`Segment.simple`) fields are read with one ``str.partition`` each. Other segments
take the general path through :meth:`Segment.get`. Both feed the same checks.
"""

from __future__ import annotations

import math

from protocol.hl7.encoding import unescape
from protocol.hl7.er7 import Segment
from protocol.hl7.errors import BadValue, MissingField
from protocol.hl7.view import Coded, Obx

VALUE_TYPES = frozenset({"NM", "ST", "CWE", "CE", "CNE", "TX", "FT", "SN", "DT", "DTM", "TS", "ID", "IS", "TM"})
RESULT_STATUSES = frozenset("CDFINOPRSUWX")  #: HL7 table 0085
CODED_TYPES = frozenset({"CWE", "CE", "CNE"})
TEXT_TYPES = frozenset({"TX", "FT", "ST"})
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


_Fields = tuple[str, str, Coded, str, list[str], Coded, str, list[str], str, str]


def _coded_plain(value: str, component: str) -> Coded:
    """CE/CWE of a value known to hold no repetition, escape or subcomponent character."""
    if not value:
        return _EMPTY
    c = value.split(component)
    if len(c) < 6:
        c += _PAD[len(c)]
    return Coded(c[0], c[1], c[2], c[3], c[4], c[5])


def _fields_fast(seg: Segment) -> _Fields:
    f = seg.fields
    if len(f) < 15:
        f = f + _BLANK[len(f):]
    c = seg.delims.component
    v5 = f[5]
    return (f[1].partition(c)[0], f[2].partition(c)[0], _coded_plain(f[3], c), f[4].partition(c)[0],
            [v5] if v5 else [], _coded_plain(f[6], c), f[7].partition(c)[0], [f[8].partition(c)[0]],
            f[11].partition(c)[0], f[14].partition(c)[0])


def _fields_general(seg: Segment) -> _Fields:
    get = seg.get
    return (get(1), get(2), coded(seg, 3), get(4), seg.repetitions(5), coded(seg, 6), get(7),
            [get(8, rep=i) for i in range(len(seg.repetitions(8)))], get(11), get(14))


def _checked(seg: Segment) -> _Fields:
    """The OBX fields we use, after the checks on value type, code and status."""
    fields = _fields_fast(seg) if seg.simple else _fields_general(seg)
    set_id, vt, code, sub_id, reps, units, ref_range, flag_reps, status, when = fields
    if vt not in VALUE_TYPES:
        vt = vt.strip().upper()
    if not code.code and not code.alt_code:
        raise MissingField("OBX-3 (observation identifier) is empty", location=seg.location(3))
    if reps and not vt:
        raise MissingField("OBX-2 (value type) is empty although OBX-5 holds a value", location=seg.location(2))
    if vt and vt not in VALUE_TYPES:
        raise BadValue(f"OBX-2 value type {vt[:8]!r} is not supported", location=seg.location(2))
    if status not in RESULT_STATUSES:
        status = status.strip().upper()
        if status not in RESULT_STATUSES:
            raise (MissingField if not status else BadValue)(
                f"OBX-11 result status {status[:4]!r} is not in HL7 table 0085", location=seg.location(11))
    return set_id, vt, code, sub_id, reps, units, ref_range, flag_reps, status, when


def _values(seg: Segment, vt: str, reps: list[str]) -> tuple[tuple[str, ...], tuple[Coded, ...]]:
    if not reps:
        return (), ()
    if vt in CODED_TYPES:
        codes = tuple(coded(seg, 5, i) for i in range(len(reps)))
        return tuple(c.code or c.text for c in codes), codes
    if vt in TEXT_TYPES:  # a stray component separator in free text is kept
        return tuple(seg.delims.component.join(seg.components(5, i)) for i in range(len(reps))), ()
    if vt == "SN":
        return tuple("".join(seg.components(5, i)) for i in range(len(reps))), ()
    if seg.simple:
        return (reps[0].partition(seg.delims.component)[0],), ()
    return tuple(seg.get(5, 1, rep=i) for i in range(len(reps))), ()


def check_obx(seg: Segment) -> None:
    """Every check :func:`read_obx` makes, without building the view (the listener's hot path)."""
    fields = _checked(seg)
    vt, reps = fields[1], fields[4]
    if reps and (vt == "NM" or vt == "SN"):
        _number(seg, _values(seg, vt, reps)[0], vt)


def read_obx(seg: Segment) -> Obx:
    """OBX view with the checks on value type, code, number and status."""
    set_id, vt, code, sub_id, reps, units, ref_range, flag_reps, status, when = _checked(seg)
    values, codes = _values(seg, vt, reps)
    numeric = _number(seg, values, vt) if vt == "NM" or vt == "SN" else None
    flags = tuple(f for f in (x.strip() for x in flag_reps) if f)
    return Obx(set_id, vt, code, sub_id, values, codes, numeric, units, ref_range, flags, status, when)


_BLANK = [""] * 15


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
