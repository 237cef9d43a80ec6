"""A bounds-checked little-endian cursor over one GATT characteristic value.

Every read checks the remaining length first and raises :class:`TruncatedFrame` naming the
field it could not read; :meth:`Reader.finish` raises :class:`OverlongFrame` when bytes are
left over. Numbers that are IEEE 11073 special values are returned as
:class:`~drivers.ble.ieee11073.Special`; the codec decides whether that is acceptable.
"""

from __future__ import annotations

import datetime as dt

from drivers.ble.ieee11073 import Special, float32, sfloat
from drivers.errors import InvalidValue, OverlongFrame, TruncatedFrame


class Reader:
    """Sequential reader; ``name`` (e.g. "blood pressure measurement") prefixes every message."""

    __slots__ = ("_data", "_name", "_pos")

    def __init__(self, data: bytes, name: str) -> None:
        self._data = bytes(data)
        self._name = name
        self._pos = 0

    def _take(self, n: int, field: str) -> bytes:
        end = self._pos + n
        if end > len(self._data):
            raise TruncatedFrame(
                f"{self._name}: frame is {len(self._data)} bytes, too short for {field} "
                f"(needs {end})",
                self._data,
            )
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self, field: str) -> int:
        """Unsigned 8-bit integer."""
        return self._take(1, field)[0]

    def u16(self, field: str) -> int:
        """Unsigned 16-bit little-endian integer."""
        return int.from_bytes(self._take(2, field), "little")

    def sfloat(self, field: str) -> float | Special:
        """IEEE 11073 16-bit SFLOAT."""
        return sfloat(self.u16(field))

    def float32(self, field: str) -> float | Special:
        """IEEE 11073 32-bit FLOAT."""
        return float32(int.from_bytes(self._take(4, field), "little"))

    def date_time(self) -> str | None:
        """Bluetooth Date Time (7 bytes) as ISO 8601 without zone; None when the device says 'unknown'.

        Year 0, month 0 or day 0 mean "not known" (the device clock was never set). Any
        other value outside its range is an :class:`InvalidValue`.
        """
        raw = self._take(7, "time stamp")
        year = int.from_bytes(raw[0:2], "little")
        month, day, hour, minute, second = raw[2], raw[3], raw[4], raw[5], raw[6]
        if (year != 0 and not 1582 <= year <= 9999) or month > 12 or day > 31 or hour > 23 \
                or minute > 59 or second > 59:
            raise InvalidValue(f"{self._name}: time stamp out of range ({raw.hex(' ')})", self._data)
        if year == 0 or month == 0 or day == 0:
            return None
        try:
            return dt.datetime(year, month, day, hour, minute, second).isoformat()
        except ValueError:
            raise InvalidValue(f"{self._name}: time stamp is not a real date ({raw.hex(' ')})",
                               self._data) from None

    def finish(self) -> None:
        """Raise :class:`OverlongFrame` when bytes remain after the last field."""
        extra = len(self._data) - self._pos
        if extra:
            raise OverlongFrame(
                f"{self._name}: {extra} byte(s) after the last field the flags announce "
                f"(frame {len(self._data)}, expected {self._pos})",
                self._data,
            )

    def require_nonempty(self) -> None:
        """Raise :class:`TruncatedFrame` for an empty value."""
        if not self._data:
            raise TruncatedFrame(f"{self._name}: empty frame", self._data)


def required(value: float | Special, field: str, name: str, raw: bytes) -> float:
    """A value the measurement cannot exist without: a special value rejects the frame."""
    if isinstance(value, Special):
        raise InvalidValue(f"{name}: {field} is {value.value}", raw)
    return value


def optional(value: float | Special, field: str, status: list[str]) -> float | None:
    """A secondary value: a special value drops it and adds ``"{field}_{special}"`` to ``status``."""
    if isinstance(value, Special):
        status.append(f"{field}_{value.code}")
        return None
    return value
