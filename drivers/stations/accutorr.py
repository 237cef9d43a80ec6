"""Datascope Accutorr-style blood-pressure monitor, "Show patient data" line (pure).

From the Accutorr service manual, "PC Interface" (manualslib.de, Datascope Accutorr 3,
pp. 1-52/1-53): 8N1, printable ASCII, no checksum. At power-up the monitor prints
``ACCUTORR PC Interface is ready`` and the prompt ``>``; the host sends one character
(``P`` = show patient data) and gets::

    P:--,85,120, 45, 80,000,010,000, 5

fields: SaO2, pulse rate, systolic, mean, diastolic, status bytes 0-2, minutes since the
last NIBP measurement. A field not in use is ``--``. SaO2 is not a vital of this hub and
is ignored; non-zero status bytes are kept as ``status_bytes=000,010,000`` (their bit
meanings are on a page no public source reproduces). All of systolic, mean and diastolic
``--`` means no NIBP measurement yet (Signal "empty"); only some of them is an error.

The monitor answers every poll with the same last measurement, so this decoder keeps
state: it reports a measurement when the values change or the elapsed minutes go back
(a new measurement with identical values). :meth:`AccutorrDecoder.reset` forgets only
the line buffer, so a reconnect does not repeat the last measurement. Each measurement
carries ``age_s`` (elapsed minutes x 60), so after a hub restart the hub can tell the
measurement still on show from a new one with equal values, and never binds it to a
session opened after it was taken.
"""

from __future__ import annotations

import msgspec

from drivers.base import Measurement
from drivers.errors import FrameError, InvalidValue, OverlongFrame, TruncatedFrame
from drivers.stations.common import Item, LineDecoder, Signal, measurement, number, observation
from protocol import codes

POLL = b"P"
BANNER = "ACCUTORR PC Interface is ready"
FIELDS = 9
MAX_MINUTES = 527_040  #: a year: an elapsed count beyond it is taken as "a year or more"


def _opt(text: str, name: str) -> float | None:
    t = text.strip()
    return None if t == "--" else number(t, name)


def parse_line(line: bytes) -> tuple[Measurement, int] | Signal | None:
    """One line -> (measurement, elapsed minutes), a Signal, or None (another command's answer)."""
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        raise FrameError("Accutorr line is not ASCII", line) from None
    if text == ">" or text == BANNER:
        return Signal("prompt")
    if text[:2] in ("L:", "C:"):
        return None  # alarm limits / prompt answers: not measurements
    if not text.startswith("P:"):
        raise FrameError("Accutorr line does not start with P:", line)
    fields = text[2:].split(",")
    if len(fields) < FIELDS:
        raise TruncatedFrame(f"Accutorr P: line has {len(fields)} fields, expected {FIELDS}", line)
    if len(fields) > FIELDS:
        raise OverlongFrame(f"Accutorr P: line has {len(fields)} fields, expected {FIELDS}", line)
    _spo2, pulse, sys_, mean, dia, *status_bytes, elapsed = fields
    values = [_opt(sys_, "systolic"), _opt(mean, "mean"), _opt(dia, "diastolic")]
    minutes = _opt(elapsed, "elapsed")
    if all(v is None for v in values):
        return Signal("empty")
    if any(v is None for v in values):
        raise InvalidValue("Accutorr line has only some of systolic/mean/diastolic", line)
    s, m, d = (v for v in values if v is not None)
    obs = [observation(codes.SYSTOLIC, s, "mm[Hg]"), observation(codes.DIASTOLIC, d, "mm[Hg]"),
           observation(codes.MEAN_PRESSURE, m, "mm[Hg]")]
    if (p := _opt(pulse, "pulse")) is not None:
        obs.append(observation(codes.PULSE, p, "/min"))
    st = tuple(b.strip() for b in status_bytes)
    status = () if all(b.strip("0") == "" for b in st) else ("status_bytes=" + ",".join(st),)
    found = measurement("blood_pressure", obs, line, status=status)
    if minutes is None:
        return found, 0
    return msgspec.structs.replace(found, age_s=min(max(0, int(minutes)), MAX_MINUTES) * 60), int(minutes)


class AccutorrDecoder(LineDecoder):
    """Stream decoder that reports each NIBP measurement once although every poll repeats it."""

    def __init__(self) -> None:
        super().__init__(self._parse, max_len=128, standalone=b">")
        self._last: tuple[tuple[float, ...], int] | None = None

    def _parse(self, line: bytes) -> Item | None:
        parsed = parse_line(line)
        if not isinstance(parsed, tuple):
            return parsed
        m, minutes = parsed
        key = tuple(o.value for o in m.observations)
        last, self._last = self._last, (key, minutes)
        if last is not None and last[0] == key and minutes >= last[1]:
            return None  # the same measurement, polled again
        return m


def decoder() -> AccutorrDecoder:
    """Stream decoder for the Accutorr-style dialect (it has no configuration keys)."""
    return AccutorrDecoder()
