"""Detecto-style ``Time,Date,BMI,Height,Weight`` line (pure). 9600 8N1, CR.

Example from the Detecto solo manual (devices.md)::

    12:00,08/07/15,21.5,5'03.0",132.3lb

Height is feet'inches" (or ``160.0cm``), weight ``lb`` (or ``kg``); values are converted
to cm/kg with the originals kept. A weight of 0 means the platform is empty (Signal).
A BMI of ``--`` or empty is left out. The date is month/day/year (``date_order =
"mdy"``, configurable: the manual's example does not settle the order).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from drivers.errors import FrameError, InvalidValue, OverlongFrame, TruncatedFrame
from drivers.stations.common import Item, LineDecoder, Signal, measurement, number, observation
from drivers.stations.tanita import DateOrder, parse_date, parse_time
from protocol import codes
from protocol.model import Observation

_FEET = re.compile(r"""(\d{1,2})'\s*(\d{1,2}(?:\.\d+)?)"?""")
_METRIC = re.compile(r"(\d+(?:\.\d+)?)\s*(cm|in)")
_WEIGHT = re.compile(r"(-?\d+(?:\.\d+)?)\s*(lb|lbs|kg)")


def parse_height(text: str) -> Observation | None:
    """``5'03.0"`` / ``160.0cm`` -> height observation; None for an empty/``--`` field."""
    t = text.strip()
    if t in ("", "--"):
        return None
    if m := _FEET.fullmatch(t):
        feet, inches = int(m.group(1)), float(m.group(2))
        if inches >= 12:
            raise InvalidValue(f"height {t!r}: inches must be below 12")
        return observation(codes.HEIGHT, round(feet * 12 + inches, 2), "[in_i]")
    if m := _METRIC.fullmatch(t):
        return observation(codes.HEIGHT, float(m.group(1)), m.group(2))
    raise InvalidValue(f"height {t[:16]!r} is neither ft'in\" nor cm")


class DetectoOptions(msgspec.Struct, frozen=True, kw_only=True):
    """The ``detecto`` keys of a station's device table."""

    date_order: DateOrder = "mdy"


class DetectoParser:
    """Parse one line."""

    def __init__(self, options: DetectoOptions | None = None) -> None:
        self.date_order = (options or DetectoOptions()).date_order

    def __call__(self, line: bytes) -> Item | None:
        """A Measurement, Signal("empty"), or a raised FrameError."""
        try:
            text = line.decode("ascii")
        except UnicodeDecodeError:
            raise FrameError("Detecto line is not ASCII", line) from None
        fields = text.split(",")
        if len(fields) < 5:
            raise TruncatedFrame(f"Detecto line has {len(fields)} fields, expected 5", line)
        if len(fields) > 5:
            raise OverlongFrame(f"Detecto line has {len(fields)} fields, expected 5", line)
        time_, date, bmi, height, weight = fields
        m = _WEIGHT.fullmatch(weight.strip())
        if m is None:
            raise InvalidValue(f"Detecto weight {weight.strip()[:16]!r} is not a number with lb/kg", line)
        value = float(m.group(1))
        if value == 0:
            return Signal("empty")
        if value < 0:
            raise InvalidValue("Detecto weight is negative", line)
        device_time = parse_date(date, self.date_order) + "T" + parse_time(time_)
        obs = [observation(codes.WEIGHT, value, "lb" if m.group(2).startswith("lb") else "kg")]
        kind: Any = "weight"
        if (h := parse_height(height)) is not None:
            obs.insert(0, h)
            kind = "height_weight"
        if bmi.strip() not in ("", "--"):
            obs.append(observation(codes.BMI, number(bmi, "bmi"), "kg/m2"))
        return measurement(kind, obs, line, device_time=device_time)


def decoder(options: DetectoOptions | None = None) -> LineDecoder:
    """Stream decoder for the Detecto-style dialect."""
    return LineDecoder(DetectoParser(options), max_len=128)
