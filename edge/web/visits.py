"""What the nurses' status page lists (pure): today's visits with their values and flags, the short
list of visits an unbound reading may be bound to, and when sync counts as stuck.

Values are shown with the flags the hub stored on each observation when it was measured (the
flags were judged for the person measured: a child by WHO's references, a pregnant woman by the
pregnancy classes), so this module never judges again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from edge.web.results import latest_values, shown

#: how many visits the bind list offers for one reading
BIND_CHOICES = 5
#: sync counts as stuck when the oldest unsent record is this old and the last attempt failed
STUCK_AFTER_S = 600.0
#: flags by how much they need a look, most first
_SEVERITY = {"HH": 4, "LL": 4, "A": 3, "H": 2, "L": 2, "N": 1}


@dataclass(frozen=True)
class Value:
    """One shown value: ``label`` is a catalog key, ``unit`` a UCUM code, ``flag`` N/H/L/HH/LL/A or None."""

    label: str
    value: str
    unit: str
    flag: str | None


@dataclass(frozen=True)
class Visit:
    """One row of today's visits (masked subject only)."""

    session_id: str
    station_id: str
    opened_at: int
    closed_at: int | None
    close_reason: str | None
    name_masked: str
    id_masked: str
    pregnant_weeks: int | None
    values: tuple[Value, ...]

    @property
    def is_open(self) -> bool:
        """Still open (the patient is at the station)."""
        return self.close_reason is None

    @property
    def flagged(self) -> bool:
        """Some value is outside normal."""
        return any(v.flag not in (None, "N") for v in self.values)


def worst_flag(flags: Iterable[str | None]) -> str | None:
    """The flag that needs the closest look (HH/LL, then A, then H/L, then N)."""
    present = [f for f in flags if f]
    return max(present, key=lambda f: _SEVERITY.get(f, 0)) if present else None


def values(readings: Iterable[Mapping[str, Any]]) -> tuple[Value, ...]:
    """The shown values of a visit's readings, in the kiosk's order; a later value of a kind replaces
    an earlier one; systolic and diastolic as one blood pressure."""
    return tuple(Value(s.label, s.value, s.unit, worst_flag(o.get("flag") for o in s.sources))
                 for s in shown(latest_values(readings)))


def visits(sessions: Iterable[Mapping[str, Any]],
           readings: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[Visit]:
    """Today's visits (``sessions`` as :meth:`edge.store.reader.Reader.sessions_since` gives them, newest
    first) with the values of their readings (``readings`` by session id)."""
    return [Visit(s["session_id"], s["station_id"], s["opened_at"], s["closed_at"], s["close_reason"],
                  s["name_masked"] or "", s["id_masked"] or "", s["pregnant_weeks"],
                  values(readings.get(s["session_id"], ()))) for s in sessions]


def bind_choices(reading: Mapping[str, Any], candidates: Iterable[Visit],
                 limit: int = BIND_CHOICES) -> list[Visit]:
    """The visits an unbound reading may belong to: the same station's, the nearest in time to the
    reading first (a patient measured just before or after her card was read)."""
    same = [v for v in candidates if v.station_id == reading["station_id"]]
    return sorted(same, key=lambda v: abs(v.opened_at - int(reading["at"])))[:limit]


def sync_stuck(oldest_age_s: float | None, last_error: str | None, state: str) -> bool:
    """Records wait longer than :data:`STUCK_AFTER_S` and sync is failing or paused."""
    if state == "blocked":
        return True
    return oldest_age_s is not None and oldest_age_s >= STUCK_AFTER_S and bool(last_error) and state != "sending"
