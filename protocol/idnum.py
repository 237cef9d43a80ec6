"""Resident ID numbers (GB 11643-1999, ISO 7064 MOD 11-2).

>>> check_character("11010519491231002")
'X'
>>> normalise("11010519491231002x")
'11010519491231002X'
>>> mask("11010519491231002X")
'1101**********002X'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from protocol.errors import IdNumberError

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"


def check_character(first17: str) -> str:
    """The check character for the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise IdNumberError("an ID number has 17 digits before the check character")
    total = sum(int(d) * w for d, w in zip(first17, WEIGHTS, strict=True))
    return CHECK_CHARS[total % 11]


def normalise(number: str) -> str:
    """Validate ``number`` and return it upper-cased; raise IdNumberError saying why not.

    Checks: 18 characters, 17 digits then a digit or X, a real birth date not in the
    future, and the MOD 11-2 check character.
    """
    n = number.strip().upper()
    if len(n) != 18:
        raise IdNumberError(f"an ID number has 18 characters, this one has {len(n)}")
    if not (n[:17].isascii() and n[:17].isdigit()) or n[17] not in "0123456789X":
        raise IdNumberError("an ID number is 17 digits followed by a digit or X")
    birth = _birth_date(n)
    if birth is None:
        raise IdNumberError("characters 7-14 of the ID number are not a real date")
    if birth > dt.date.today() or birth.year < 1880:
        raise IdNumberError("the birth date in the ID number is out of range")
    expected = check_character(n[:17])
    if n[17] != expected:
        raise IdNumberError("the check character of the ID number is wrong")
    return n


def is_valid(number: str) -> bool:
    """True when :func:`normalise` would accept ``number``."""
    try:
        normalise(number)
    except IdNumberError:
        return False
    return True


def _birth_date(n: str) -> dt.date | None:
    try:
        return dt.date(int(n[6:10]), int(n[10:12]), int(n[12:14]))
    except ValueError:
        return None


def birth_date(number: str) -> dt.date:
    """Birth date encoded in a valid ID number."""
    birth = _birth_date(normalise(number))
    assert birth is not None  # normalise checked it
    return birth


def sex(number: str) -> str:
    """GB/T 2261.1 sex code from the 17th digit: '1' male (odd), '2' female (even)."""
    return "1" if int(normalise(number)[16]) % 2 else "2"


def mask(number: str) -> str:
    """Mask for screens and logs: first 4 and last 4 characters kept."""
    n = number.strip()
    if len(n) <= 8:
        return "*" * len(n)
    return n[:4] + "*" * (len(n) - 8) + n[-4:]


def mask_name(name: str) -> str:
    """Mask a name for screens: 张三 -> 张*, 欧阳娜娜 -> 欧***; Latin names keep the first letter."""
    name = name.strip()
    if not name:
        return ""
    return name[0] + "*" * max(1, len(name) - 1)


def blind_index(key: bytes, number: str) -> str:
    """Keyed HMAC-SHA256 of the normalised number, hex: equal numbers match, nothing leaks.

    ``key`` must be a secret of its own (not the encryption key) of at least 32 bytes.
    """
    if len(key) < 32:
        raise IdNumberError("the blind-index key must be at least 32 bytes")
    return hmac.new(key, normalise(number).encode("ascii"), hashlib.sha256).hexdigest()
