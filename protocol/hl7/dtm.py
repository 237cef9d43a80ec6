"""HL7 DTM timestamps: ``YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]``.

    >>> format_dtm(0, 480)
    '19700101080000+0800'
    >>> parse_dtm("20110103143428-0800").isoformat()
    '2011-01-03T14:34:28-08:00'
"""

from __future__ import annotations

import datetime as dt
import re

from protocol.hl7.errors import BadValue

_DTM = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?([+-]\d{4})?")


def format_dtm(unix_ms: int, tz_minutes: int = 480) -> str:
    """Seconds-precision DTM with an explicit offset (China: +0800 by default)."""
    tz = dt.timezone(dt.timedelta(minutes=tz_minutes))
    t = dt.datetime.fromtimestamp(unix_ms / 1000, tz)
    sign = "+" if tz_minutes >= 0 else "-"
    hours, minutes = divmod(abs(tz_minutes), 60)
    return t.strftime("%Y%m%d%H%M%S") + f"{sign}{hours:02d}{minutes:02d}"


def parse_dtm(value: str, default_tz_minutes: int | None = None, location: str = "") -> dt.datetime | None:
    """A DTM as a datetime (aware when the value or ``default_tz_minutes`` gives an offset); None if empty.

    Missing month/day default to 1, missing time parts to 0. Raises :class:`BadValue`.
    """
    value = value.strip()
    if not value:
        return None
    m = _DTM.fullmatch(value)
    if m is None:
        raise BadValue(f"{value[:24]!r} is not an HL7 timestamp (YYYYMMDDHHMMSS+ZZZZ)", location=location)
    y, mo, d, h, mi, s, frac, off = m.groups()
    tz: dt.tzinfo | None = None
    if off:
        hours, minutes = int(off[1:3]), int(off[3:5])
        if hours > 14 or minutes > 59:
            raise BadValue(f"{value[:24]!r} has a time zone offset outside -14:00..+14:00", location=location)
        minutes += hours * 60
        tz = dt.timezone(dt.timedelta(minutes=-minutes if off[0] == "-" else minutes))
    elif default_tz_minutes is not None:
        tz = dt.timezone(dt.timedelta(minutes=default_tz_minutes))
    try:
        return dt.datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0),
                           int((frac or "0").ljust(6, "0")[:6]), tzinfo=tz)
    except ValueError:
        raise BadValue(f"{value[:24]!r} is not a real date/time", location=location) from None
