"""Validation of every decoded record before it is stored.

The body decoder (protocol.batch) already enforced types, lengths and enums; this adds the
meaning: known codes in their canonical units, finite values, sane times, real ID
numbers. Messages name the seq and the field, never a personal value.

A record that does not validate is refused on its own (docs/protocol.md §3.1): the batch
is stored without it, the ack names it with a machine-readable :data:`REASONS` code, and
the hub moves it to its dead-letter list. :func:`check_columns` splits a decoded body into
the records to store and the :class:`Refusal` of each one refused.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from cloud.errors import CloudError
from protocol import idnum
from protocol.batch import Columns, WireObservation, WireReading
from protocol.codes import CODES
from protocol.errors import IdNumberError
from protocol.model import Observation, Reading, ReadingBound, Record, SessionClosed, SessionOpened

MAX_TIME_MS = 4_102_444_800_000  #: 2100-01-01
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UNITS = {code: c.unit for code, c in CODES.items()}  #: observation code -> canonical unit

#: machine-readable reasons a single record is refused (carried in the ack, docs/protocol.md §3.1)
REASONS = ("bad_time", "missing_field", "no_observations", "not_finite", "unknown_code", "wrong_unit",
           "bad_national_id", "bad_date", "bad_pregnant_weeks", "bad_reading_uid")


class InvalidRecord(CloudError):
    """A record of an opened batch does not validate; ``code`` is one of :data:`REASONS`."""

    reason = "invalid_record"

    def __init__(self, message: str, code: str = "missing_field") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused record: its seq, record type, reason code and message (no personal value)."""

    seq: int
    at: int  #: the record's hub time, ms
    record_type: str  #: reading, session_opened, session_closed, reading_bound
    code: str
    message: str


_TYPES = {Reading: "reading", SessionOpened: "session_opened", SessionClosed: "session_closed",
          ReadingBound: "reading_bound"}


def _fail(r: Record, code: str, problem: str) -> InvalidRecord:
    return InvalidRecord(f"record seq {r.seq} ({type(r).__name__}): {problem}", code)


def _reading(r: Reading | WireReading, seq: int) -> None:
    if not r.device_id or not r.station_id:
        raise InvalidRecord(f"record seq {seq} (Reading): device_id and station_id must not be empty", "missing_field")
    if not r.observations:
        raise InvalidRecord(f"record seq {seq} (Reading): a reading has at least one observation", "no_observations")
    observations: Sequence[Observation | WireObservation] = r.observations
    for i, o in enumerate(observations):
        problem = code = None
        if not math.isfinite(o.value) or (o.original_value is not None and not math.isfinite(o.original_value)):
            problem, code = f"observation {i} ({o.code}) has a value that is not a finite number", "not_finite"
        elif (known := CODES.get(o.code)) is None:
            if r.kind != "generic":
                problem = f"observation {i} has unknown code {o.code!r} (allowed only for kind generic)"
                code = "unknown_code"
        elif o.unit != known.unit:
            problem = f"observation {i} ({o.code}) is in {o.unit!r}, the canonical unit is {known.unit!r}"
            code = "wrong_unit"
        if problem and code:
            raise InvalidRecord(f"record seq {seq} (Reading): {problem}", code)


def _opened(r: SessionOpened) -> None:
    if not r.session_id or not r.station_id:
        raise _fail(r, "missing_field", "session_id and station_id must not be empty")
    s = r.subject
    if s.national_id is not None:
        try:
            idnum.normalise(s.national_id)
        except IdNumberError as exc:
            raise _fail(r, "bad_national_id", f"subject national_id is not valid ({exc})") from None
    for name in ("birth_date", "valid_from"):
        value = getattr(s, name)
        if value is not None and not _DATE.fullmatch(value):
            raise _fail(r, "bad_date", f"subject {name} is not YYYY-MM-DD")
    if r.pregnant_weeks is not None and not 0 <= r.pregnant_weeks <= 45:
        raise _fail(r, "bad_pregnant_weeks", "pregnant_weeks must be 0-45")


def validate_record(r: Record) -> None:
    """Raise InvalidRecord when ``r`` does not validate."""
    if not 0 <= r.at < MAX_TIME_MS:
        raise _fail(r, "bad_time", "time is outside 1970-2100")
    if isinstance(r, Reading):
        _reading(r, r.seq)
    elif isinstance(r, SessionOpened):
        _opened(r)
    elif isinstance(r, SessionClosed):
        if not r.session_id:
            raise _fail(r, "missing_field", "session_id must not be empty")
    elif isinstance(r, ReadingBound):
        try:
            uuid.UUID(r.reading_uid)
        except ValueError:
            raise _fail(r, "bad_reading_uid", "reading_uid is not a UUID") from None
        if not r.session_id or not r.by:
            raise _fail(r, "missing_field", "session_id and by must not be empty")


def validate(records: list[Record]) -> None:
    """Raise InvalidRecord for the first record that does not validate."""
    for r in records:
        validate_record(r)


def _reading_refusal(r: WireReading, seq: int, at: int) -> Refusal | None:
    """Why a reading that failed the quick pass of :func:`check_columns` is refused (None: it is not)."""
    if not 0 <= at < MAX_TIME_MS:
        return Refusal(seq, at, "reading", "bad_time", f"record seq {seq} (Reading): time is outside 1970-2100")
    try:
        _reading(r, seq)
    except InvalidRecord as exc:
        return Refusal(seq, at, "reading", exc.code, str(exc))
    return None  # a generic reading with codes of its own


def check_columns(cols: Columns) -> tuple[Columns, list[Refusal]]:
    """Split a decoded body: the columns without refused records, and the refusals in seq order."""
    refused: list[Refusal] = []
    gone: set[int] = set()  #: seqs of refused readings
    units, finite = _UNITS, math.isfinite
    for r, seq, at in zip(cols.readings, cols.seq, cols.at, strict=True):  # a quick pass on the hot path
        ok = bool(r.device_id and r.station_id and r.observations) and 0 <= at < MAX_TIME_MS
        for o in r.observations:
            if units.get(o.code) != o.unit or not finite(o.value) or (
                    o.original_value is not None and not finite(o.original_value)):
                ok = False
                break
        if not ok and (refusal := _reading_refusal(r, seq, at)) is not None:
            refused.append(refusal)
            gone.add(seq)
    others: list[Record] = []
    for rec in cols.others:
        try:
            validate_record(rec)
        except InvalidRecord as exc:
            refused.append(Refusal(rec.seq, rec.at, _TYPES[type(rec)], exc.code, str(exc)))
        else:
            others.append(rec)
    if not refused:
        return cols, refused
    refused.sort(key=lambda f: f.seq)
    keep = [i for i, seq in enumerate(cols.seq) if seq not in gone]
    kept = Columns(cols.hub_id, cols.epoch, cols.first_seq, cols.count, [cols.seq[i] for i in keep],
                   [cols.at[i] for i in keep], [cols.readings[i] for i in keep], others)
    return kept, refused


def validate_columns(cols: Columns) -> None:
    """Raise InvalidRecord for the first record of ``cols`` that does not validate."""
    _, refused = check_columns(cols)
    if refused:
        raise InvalidRecord(refused[0].message, refused[0].code)
