"""Tanita-style comma-separated key/value line (pure). RS-232 9600 8N1, CR LF.

Tanita's data output puts a short header, then alternating key and value fields::

    {0,16,~0,1,~1,1,~2,1,MO,"DC-217A",DT,"05/03/2024",Ti,"09:41",GE,2,AG,34,Hm,158.0,Wk,55.4,MI,22.2,FW,27.5,CS,5A

Fields used (the keys are configuration, defaults shown): ``Wk`` weight kg (required),
``Hm`` height cm, ``MI`` BMI, ``FW`` body fat %, ``DT`` date, ``Ti`` time. Header tokens
(``{0``, ``~0`` ...) and unknown keys are skipped. A weight of 0 means the platform is
empty (a Signal, not a measurement).

Not confirmed by a public DC-217A manual, chosen here and configurable:

* the ``CS`` checksum is the XOR of every byte of the line before the ``CS`` key,
  as two hex digits (``checksum = "xor"``; set ``checksum = "ignore"`` for a device
  that computes it differently);
* ``DT`` is day/month/year (``date_order = "dmy"``; ``"mdy"`` or ``"ymd"`` otherwise).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from drivers.errors import BadChecksum, FrameError, InvalidValue, TruncatedFrame
from drivers.framing import xor
from drivers.stations.common import Item, LineDecoder, Signal, measurement, number, observation
from protocol import codes

_KEY = re.compile(r"[A-Za-z][A-Za-z0-9]")
#: how a date field is ordered: day/month/year, month/day/year, year/month/day
DateOrder = Literal["dmy", "mdy", "ymd"]
Key = Annotated[str, Meta(pattern=f"^{_KEY.pattern}$", description=(
    'write the field\'s key as it appears in the line: two characters, a letter first (e.g. "Wk")'))]


class TanitaKeys(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``keys = { weight = "Wk", ... }``: the line's key for each value."""

    weight: Key = "Wk"  #: kg, required in every line
    height: Key = "Hm"  #: cm
    bmi: Key = "MI"
    fat: Key = "FW"  #: body fat %
    date: Key = "DT"
    time: Key = "Ti"


class TanitaOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The ``tanita-csv`` keys of a station's device table."""

    checksum: Literal["xor", "ignore"] = "xor"  #: "ignore": the device computes CS differently
    date_order: DateOrder = "dmy"
    keys: TanitaKeys = msgspec.field(default_factory=TanitaKeys)


def parse_date(text: str, order: str) -> str:
    """``05/03/2024`` (or with ``-`` / ``.``; 2- or 4-digit year) -> ISO date for ``order``."""
    parts = re.split(r"[/.\-]", text.strip())
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise InvalidValue(f"date {text[:16]!r} is not d/m/y")
    pos = {c: i for i, c in enumerate(order)}
    y, m, d = (int(parts[pos[c]]) for c in "ymd")
    if y < 100:
        y += 2000
    try:
        return dt.date(y, m, d).isoformat()
    except ValueError:
        raise InvalidValue(f"date {text[:16]!r} is not a real date") from None


def parse_time(text: str) -> str:
    """``09:41`` or ``09:41:05`` -> ``09:41:00`` / ``09:41:05``."""
    parts = text.strip().split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) <= 2 for p in parts):
        raise InvalidValue(f"time {text[:16]!r} is not hh:mm")
    h, m, s = (int(p) for p in (*parts, "0")[:3])
    if h > 23 or m > 59 or s > 59:
        raise InvalidValue(f"time {text[:16]!r} is out of range")
    return f"{h:02d}:{m:02d}:{s:02d}"


class TanitaParser:
    """Parse one line of the key/value dialect."""

    def __init__(self, options: TanitaOptions | None = None) -> None:
        o = options or TanitaOptions()
        self.keys, self.checksum, self.date_order = o.keys, o.checksum, o.date_order

    def __call__(self, line: bytes) -> Item | None:
        """A Measurement, Signal("empty"), or a raised FrameError."""
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise FrameError("Tanita line is not ASCII", line) from None
        tokens = [t.strip() for t in text.split(",")]
        start = next((i for i, t in enumerate(tokens) if _KEY.fullmatch(t)), None)
        if start is None:
            raise FrameError("Tanita line has no key/value fields", line)
        pairs = tokens[start:]
        if len(pairs) % 2:
            raise TruncatedFrame("Tanita line ends with a key without value", line)
        fields = {pairs[i]: pairs[i + 1].strip('"') for i in range(0, len(pairs), 2)}
        if "CS" in fields and self.checksum == "xor":
            cut = text.rfind(",CS,")
            expected = xor(line[: cut + 1])
            if fields["CS"].upper() != f"{expected:02X}":
                raise BadChecksum("Tanita CS checksum does not match", line)
        if self.keys.weight not in fields:
            raise TruncatedFrame("Tanita line has no weight field", line)
        weight = number(fields[self.keys.weight], "weight")
        if weight == 0:
            return Signal("empty")
        if weight < 0:
            raise InvalidValue("Tanita weight is negative", line)
        obs = [observation(codes.WEIGHT, weight, "kg")]
        kind: Any = "weight"
        if (h := fields.get(self.keys.height)) is not None and number(h, "height") > 0:
            obs.insert(0, observation(codes.HEIGHT, number(h, "height"), "cm"))
            kind = "height_weight"
        if (b := fields.get(self.keys.bmi)) is not None and number(b, "bmi") > 0:
            obs.append(observation(codes.BMI, number(b, "bmi"), "kg/m2"))
        if (f := fields.get(self.keys.fat)) is not None:
            obs.append(observation(codes.BODY_FAT, number(f, "fat"), "%"))
            kind = "body_composition"
        device_time = None
        if (d := fields.get(self.keys.date)) is not None:
            device_time = parse_date(d, self.date_order)
            if (t := fields.get(self.keys.time)) is not None:
                device_time += "T" + parse_time(t)
        return measurement(kind, obs, line, device_time=device_time)


def decoder(options: TanitaOptions | None = None) -> LineDecoder:
    """Stream decoder for the Tanita-style dialect."""
    return LineDecoder(TanitaParser(options), max_len=512)
