"""Validation of every decoded record before it is stored (reason ``invalid_record``, 400).

The body decoder (protocol.batch) already enforced types, lengths and enums; this adds the
meaning: known LOINC codes in their canonical units, finite values, sane times, real ID
numbers. Messages name the seq and the field, never a personal value.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence

from cloud.errors import CloudError
from protocol import idnum
from protocol.batch import Columns, WireObservation, WireReading
from protocol.codes import CODES
from protocol.errors import IdNumberError
from protocol.model import Observation, Reading, ReadingBound, Record, SessionClosed, SessionOpened

MAX_TIME_MS = 4_102_444_800_000  #: 2100-01-01
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNITS = {code: c.unit for code, c in CODES.items()}  #: LOINC code -> canonical unit


class InvalidRecord(CloudError):
    """A record of an opened batch does not validate."""

    reason = "invalid_record"


def _fail(r: Record, problem: str) -> InvalidRecord:
    return InvalidRecord(f"record seq {r.seq} ({type(r).__name__}): {problem}")


def _reading(r: Reading | WireReading, seq: int) -> None:
    if not r.device_id or not r.station_id:
        raise InvalidRecord(f"record seq {seq} (Reading): device_id and station_id must not be empty")
    if not r.observations:
        raise InvalidRecord(f"record seq {seq} (Reading): a reading has at least one observation")
    observations: Sequence[Observation | WireObservation] = r.observations
    for i, o in enumerate(observations):
        problem = None
        if not math.isfinite(o.value) or (o.original_value is not None and not math.isfinite(o.original_value)):
            problem = f"observation {i} ({o.code}) has a value that is not a finite number"
        elif (known := CODES.get(o.code)) is None:
            if r.kind != "generic":
                problem = f"observation {i} has unknown code {o.code!r} (allowed only for kind generic)"
        elif o.unit != known.unit:
            problem = f"observation {i} ({o.code}) is in {o.unit!r}, the canonical unit is {known.unit!r}"
        if problem:
            raise InvalidRecord(f"record seq {seq} (Reading): {problem}")


def _opened(r: SessionOpened) -> None:
    if not r.session_id or not r.station_id:
        raise _fail(r, "session_id and station_id must not be empty")
    s = r.subject
    if s.national_id is not None:
        try:
            idnum.normalise(s.national_id)
        except IdNumberError as exc:
            raise _fail(r, f"subject national_id is not valid ({exc})") from None
    for name in ("birth_date", "valid_from"):
        value = getattr(s, name)
        if value is not None and not _DATE.fullmatch(value):
            raise _fail(r, f"subject {name} is not YYYY-MM-DD")
    if r.pregnant_weeks is not None and not 0 <= r.pregnant_weeks <= 45:
        raise _fail(r, "pregnant_weeks must be 0-45")


def validate(records: list[Record]) -> None:
    """Raise InvalidRecord for the first record that does not validate."""
    for r in records:
        if not 0 <= r.at < MAX_TIME_MS:
            raise _fail(r, "time is outside 1970-2100")
        if isinstance(r, Reading):
            _reading(r, r.seq)
        elif isinstance(r, SessionOpened):
            _opened(r)
        elif isinstance(r, SessionClosed):
            if not r.session_id:
                raise _fail(r, "session_id must not be empty")
        elif isinstance(r, ReadingBound):
            try:
                uuid.UUID(r.reading_uid)
            except ValueError:
                raise _fail(r, "reading_uid is not a UUID") from None
            if not r.session_id or not r.by:
                raise _fail(r, "session_id and by must not be empty")


def validate_columns(cols: Columns) -> None:
    """:func:`validate` for a body decoded as columns (the readings are never built as records)."""
    if cols.at and not (min(cols.at) >= 0 and max(cols.at) < MAX_TIME_MS):
        seq = next(s for s, at in zip(cols.seq, cols.at, strict=True) if not 0 <= at < MAX_TIME_MS)
        raise InvalidRecord(f"record seq {seq} (Reading): time is outside 1970-2100")
    units, finite = _UNITS, math.isfinite
    for r, seq in zip(cols.readings, cols.seq, strict=True):  # a quick pass; _reading says what is wrong
        ok = bool(r.device_id and r.station_id and r.observations)
        for o in r.observations:
            if units.get(o.code) != o.unit or not finite(o.value) or (
                    o.original_value is not None and not finite(o.original_value)):
                ok = False
                break
        if not ok:
            _reading(r, seq)  # raises, or passes a generic reading with codes of its own
    validate(cols.others)
