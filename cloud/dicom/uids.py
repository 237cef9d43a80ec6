"""UID grammar (PS3.5 §9.1), checked before a UID is ever used in a file path.

A UID is 1-64 characters of digits and dots: components separated by single dots, no
empty component. The standard also forbids leading zeros in a component; real devices
break that rule, and a leading zero is harmless in a path, so it is tolerated.

>>> check_uid("1.2.840.10008.5.1.4.1.1.2", "SOPClassUID")
'1.2.840.10008.5.1.4.1.1.2'
"""

from __future__ import annotations

import re

from cloud.dicom.errors import InvalidUid

_UID_RE = re.compile(r"[0-9]+(?:\.[0-9]+)*")


def is_uid(value: str) -> bool:
    """True when ``value`` follows the UID grammar and is at most 64 characters."""
    return 0 < len(value) <= 64 and _UID_RE.fullmatch(value) is not None


def check_uid(value: str, what: str) -> str:
    """Return ``value`` (trailing NUL/space padding removed) or raise :class:`InvalidUid`."""
    uid = value.rstrip("\x00 ")
    if not is_uid(uid):
        shown = uid[:80].encode("ascii", "backslashreplace").decode("ascii")
        raise InvalidUid(f"{what} '{shown}' is not a valid UID (digits and dots, at most 64 characters)")
    return uid
