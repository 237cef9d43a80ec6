"""Card data of a read response: the 256-byte text block and the opaque photo (pure).

Read response data (after SW1 SW2 SW3)::

    text length u16 BE (256) | photo length u16 BE (1024) | [fingerprint length u16 BE]
    | text | photo | [fingerprint]

The fingerprint length is present only in answers to ``30 10``. The text block is UCS-2
little-endian, space padded (offsets in devices.md and qiwenming/IDCardDemo):

| offset | bytes | field | offset | bytes | field |
|---|---|---|---|---|---|
| 0 | 30 | name | 122 | 36 | ID number |
| 30 | 2 | sex code (GB/T 2261.1) | 158 | 30 | issuing authority |
| 32 | 4 | ethnic code (GB 3304) | 188 | 16 | valid from YYYYMMDD |
| 36 | 16 | birth date YYYYMMDD | 204 | 16 | valid to YYYYMMDD or 长期 |
| 52 | 70 | address | 220 | 36 | reserved |

Checks: the ID number must pass :func:`protocol.idnum.normalise` and agree with the
birth date and sex fields; dates must be real. Anything else raises
:class:`InvalidCardData` (never a crash). An unknown ethnic code is kept out of the
Subject (``ethnic_code`` None) but reported in :attr:`CardText.warnings`: the patient
can still be identified.

The photo is WLT-compressed and needs the vendor's library: it is kept opaque, never
decoded and never logged. ``CardRead.raw`` is left empty on purpose, so the clear ID
number is not stored a second time outside the encrypted subject.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from drivers.base import CardRead
from drivers.errors import InvalidValue, OverlongFrame, TruncatedFrame
from drivers.idcard.ethnic import ethnic_name, normalise_code
from protocol import idnum
from protocol.errors import IdNumberError
from protocol.model import Subject

TEXT_LEN = 256
PHOTO_MAX = 1024
FINGERPRINT_MAX = 1024
LONG_TERM = "长期"

_FIELDS = {
    "name": (0, 30), "sex": (30, 2), "ethnic": (32, 4), "birth": (36, 16), "address": (52, 70),
    "id": (122, 36), "authority": (158, 30), "valid_from": (188, 16), "valid_to": (204, 16),
}


class InvalidCardData(InvalidValue):
    """The text block decodes but a field is not acceptable (bad ID number, impossible date...)."""


@dataclass(frozen=True, slots=True)
class CardText:
    """Decoded text block."""

    subject: Subject
    ethnic_zh: str | None
    ethnic_en: str | None
    warnings: tuple[str, ...] = ()

    def __repr__(self) -> str:  # masked: safe for logs
        return f"CardText({idnum.mask(self.subject.national_id or '')}, {idnum.mask_name(self.subject.name)})"


def _date(text: str, field: str) -> str:
    if len(text) != 8 or not (text.isascii() and text.isdigit()):
        raise InvalidCardData(f"card field {field!r} is not a YYYYMMDD date")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:])).isoformat()
    except ValueError:
        raise InvalidCardData(f"card field {field!r} is not a real date") from None


def decode_text(block: bytes) -> CardText:
    """Decode the 256-byte text block into a :class:`CardText`."""
    if len(block) != TEXT_LEN:
        raise InvalidCardData(f"text block has {len(block)} bytes, expected {TEXT_LEN}")
    fields: dict[str, str] = {}
    for key, (offset, size) in _FIELDS.items():
        try:
            fields[key] = block[offset:offset + size].decode("utf-16-le").strip(" \x00\u3000")
        except UnicodeDecodeError:
            raise InvalidCardData(f"card field {key!r} is not valid UCS-2") from None
    try:
        number = idnum.normalise(fields["id"])
    except IdNumberError as exc:
        raise InvalidCardData(f"ID number on the card is invalid: {exc}") from None
    if not fields["name"]:
        raise InvalidCardData("the name on the card is empty")
    sex = fields["sex"]
    if sex not in ("0", "1", "2", "9"):
        raise InvalidCardData("sex code on the card is not 0, 1, 2 or 9")
    if sex in ("1", "2") and sex != idnum.sex(number):
        raise InvalidCardData("sex code on the card disagrees with the ID number")
    birth = _date(fields["birth"], "birth date")
    if birth != idnum.birth_date(number).isoformat():
        raise InvalidCardData("birth date on the card disagrees with the ID number")
    valid_from = _date(fields["valid_from"], "valid from")
    valid_to = "long-term" if fields["valid_to"] == LONG_TERM else _date(fields["valid_to"], "valid to")
    warnings: list[str] = []
    code = normalise_code(fields["ethnic"])
    if code is None:
        warnings.append("unknown ethnic code on the card")
    subject = Subject(
        national_id=number,
        name=fields["name"],
        sex=sex,  # type: ignore[arg-type]  # checked above
        birth_date=birth,
        ethnic_code=code,
        address=fields["address"] or None,
        authority=fields["authority"] or None,
        valid_from=valid_from,
        valid_to=valid_to,
        source="idcard",
    )
    return CardText(
        subject,
        ethnic_name(code) if code else None,
        ethnic_name(code, "en") if code else None,
        tuple(warnings),
    )


def decode_read_data(data: bytes, with_fingerprint: bool | None = None) -> CardRead:
    """Decode the data of a successful read answer (``30 01`` or ``30 10``) into a CardRead.

    ``with_fingerprint`` None guesses from the lengths (the command is usually known).
    """
    if len(data) < 4:
        raise TruncatedFrame("read answer has no length fields")
    text_len = int.from_bytes(data[0:2], "big")
    photo_len = int.from_bytes(data[2:4], "big")
    variants = (False, True) if with_fingerprint is None else (with_fingerprint,)
    for fp in variants:
        head = 6 if fp else 4
        if len(data) < head:
            continue
        fp_len = int.from_bytes(data[4:6], "big") if fp else 0
        if len(data) == head + text_len + photo_len + fp_len:
            break
    else:
        expected = 4 + text_len + photo_len
        cls = TruncatedFrame if len(data) < expected else OverlongFrame
        raise cls(f"read answer lengths (text {text_len}, photo {photo_len}) do not match its {len(data)} bytes")
    if text_len != TEXT_LEN:
        raise InvalidCardData(f"text length {text_len}, expected {TEXT_LEN}")
    if photo_len > PHOTO_MAX or fp_len > FINGERPRINT_MAX:
        raise OverlongFrame("photo or fingerprint longer than the card can hold")
    text = decode_text(data[head:head + TEXT_LEN])
    photo = data[head + TEXT_LEN:head + TEXT_LEN + photo_len]
    fingerprint = data[head + TEXT_LEN + photo_len:]
    return CardRead(subject=text.subject, photo=photo, fingerprint=fingerprint)
