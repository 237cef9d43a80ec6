"""Station sessions (DESIGN.md §3): who is being measured at each station right now.

Pure logic, no I/O: the store's writer calls it inside the transaction that stores the
records it returns, so the session a reading binds to is decided in seq order.

* An ID card, a patient QR code or a staff entry opens a session at a station; an open
  session at that station is closed first (reason ``next_card``).
* A session closes after ``session_window_s`` without activity (``timeout``). Idle time is
  measured on a monotonic clock when one is given (the hub does), so a wall-clock jump (NTP
  fixing a hub that booted without a battery clock, hours back or forward) neither keeps a
  session open for hours nor closes it early; record times stay wall-clock times.
* A reading from a station's device binds to its open session, else stays unbound
  (staff can bind it later: :meth:`SessionManager.bind` makes a ``ReadingBound`` record).
* Flags are computed on every reading for the person measured
  (:func:`protocol.clinical.interpret.flag_observations`): the session remembers the
  patient's age in days and sex from the ID card (or staff entry) and the pregnancy weeks,
  so a child is judged by WHO's growth references, never by adult cut-offs, and a pregnant
  woman by the pregnancy classes. BMI is derived when the session has both a height and a weight.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from drivers.base import Measurement
from protocol import codes
from protocol.clinical import temperature
from protocol.clinical.interpret import flag_observations
from protocol.clinical.patient import CHINA, Patient
from protocol.flags import GUIDELINE_2018, GUIDELINE_2022, BpThresholds, bmi
from protocol.ids import uuid7
from protocol.model import Observation, Reading, ReadingBound, Record, SessionClosed, SessionOpened, Subject


@dataclass
class OpenSession:
    """An open session as the hub remembers it (also mirrored in the ``sessions`` table)."""

    session_id: str
    station_id: str
    opened_at: int
    last_at: int
    pregnant_weeks: int | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    last_mono: int | None = None  #: monotonic ms of the last activity (None: not yet known, e.g. after a restart)
    subject_tag: str | None = None  #: keyed hash of the card holder's ID number (a re-read card continues the session)
    restored: bool = False  #: loaded from the store at start: opened before this hub process
    age_days: int | None = None  #: the patient's age on the day the session opened (None: unknown)
    sex: str | None = None  #: "M" or "F" (None: unknown)

    def patient(self) -> Patient:
        """Who is being measured, as the interpretation layer needs it."""
        return patient_of(self.opened_at, self.age_days, self.sex, self.pregnant_weeks, self.height_cm)


def local_day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, CHINA).date()


def patient_of(opened_at: int, age_days: int | None, sex: str | None, pregnant_weeks: int | None,
               height_cm: float | None = None) -> Patient:
    """The patient of a session row (``sessions``: opened_at, age_days, sex, pregnant_weeks, height_cm)."""
    born = None if age_days is None else local_day(opened_at) - dt.timedelta(days=age_days)
    return Patient(birth_date=born, sex=sex if sex in ("M", "F") else None, pregnant_weeks=pregnant_weeks,
                   height_cm=height_cm)


def thresholds(guideline: str) -> BpThresholds:
    """BP thresholds of a configured guideline name ("2018" or "2022")."""
    return GUIDELINE_2022 if guideline == "2022" else GUIDELINE_2018


class SessionManager:
    """Open sessions per station and the rules that make session records."""

    def __init__(self, windows_ms: dict[str, int], default_window_ms: int = 300_000,
                 bp: BpThresholds = GUIDELINE_2018, monotonic: Callable[[], int] | None = None) -> None:
        self.windows_ms = windows_ms
        self.default_window_ms = default_window_ms
        self.bp = bp
        self.monotonic = monotonic  #: ms on a clock that never jumps; None: measure idle time with ``now``
        self.open: dict[str, OpenSession] = {}  #: station id -> session

    def _touch(self, s: OpenSession, now: int) -> None:
        s.last_at = now
        s.last_mono = self.monotonic() if self.monotonic else None

    def idle_ms(self, s: OpenSession, now: int) -> int:
        """How long a session has been idle (monotonic when available, never negative)."""
        if self.monotonic is None:
            return now - s.last_at
        if s.last_mono is None:  # remembered from before a restart: trust the wall clock once, never backwards
            s.last_mono = self.monotonic() - max(0, now - s.last_at)
        return self.monotonic() - s.last_mono

    def window(self, station_id: str) -> int:
        """Idle time (ms) after which a session of this station closes."""
        return self.windows_ms.get(station_id, self.default_window_ms)

    def expire(self, now: int) -> list[Record]:
        """Close every session idle for longer than its window."""
        out: list[Record] = []
        for station_id, s in list(self.open.items()):
            if self.idle_ms(s, now) > self.window(station_id):
                out.append(self._close(station_id, "timeout", now))
        return out

    def _close(self, station_id: str, reason: str, now: int) -> SessionClosed:
        s = self.open.pop(station_id)
        return SessionClosed(at=now, session_id=s.session_id, reason=reason)  # type: ignore[arg-type]

    def close_station(self, station_id: str, reason: str, now: int) -> list[Record]:
        """Close the station's session (patient finished, staff, shutdown); nothing when none is open."""
        return [self._close(station_id, reason, now)] if station_id in self.open else []

    def identify(self, station_id: str, subject: Subject, now: int, pregnant_weeks: int | None = None,
                 subject_tag: str | None = None) -> list[Record]:
        """A card, QR code or staff entry at a station: close the previous session, open a new one.

        The same card read again at a station whose session was opened before the hub
        (re)started and is still open (``subject_tag`` equal) continues that session: the
        card still on the reader after a restart is read once more, and that is not a new
        visit. No records then; ``self.open[station_id]`` is the session. (While the hub
        runs, the reader driver reports a card lying on it once; a card tapped again is a
        new visit, as before.)
        """
        out = self.expire(now)
        current = self.open.get(station_id)
        if (current is not None and current.restored and subject_tag is not None
                and current.subject_tag == subject_tag):
            self._touch(current, now)
            current.restored = False  # re-attached once; a later tap is a new visit again
            return out
        out += self.close_station(station_id, "next_card", now)
        who = Patient.from_subject(subject.national_id, subject.birth_date, subject.sex, pregnant_weeks)
        s = OpenSession(uuid7(now), station_id, now, now, pregnant_weeks, subject_tag=subject_tag,
                        age_days=who.age_days(local_day(now)), sex=who.sex)
        self._touch(s, now)
        self.open[station_id] = s
        out.append(SessionOpened(at=now, session_id=s.session_id, station_id=station_id, subject=subject,
                                 pregnant_weeks=pregnant_weeks))
        return out

    def reading(self, station_id: str, device_id: str, m: Measurement, now: int,
                taken_by: int | None = None) -> list[Record]:
        """The records for one measurement: maybe a timeout close, then the flagged, bound reading.

        ``taken_by`` is the latest time the measurement can have been taken (None: now). A
        session opened after it never gets the reading (it was someone else's, shown again
        after a restart): the reading stays unbound and the session untouched.
        """
        out: list[Record] = []
        s = self.open.get(station_id)  # only this station's session matters; ticks expire the others
        if s is not None and self.idle_ms(s, now) > self.window(station_id):
            out.append(self._close(station_id, "timeout", now))
            s = None
        if s is not None and taken_by is not None and taken_by < s.opened_at:
            s = None
        obs = m.observations
        by_code = {o.code: o.value for o in obs}
        if s is not None:
            self._touch(s, now)
            s.height_cm = by_code.get(codes.HEIGHT, s.height_cm)
            s.weight_kg = by_code.get(codes.WEIGHT, s.weight_kg)
            height, weight = s.height_cm, s.weight_kg
        else:
            height, weight = by_code.get(codes.HEIGHT), by_code.get(codes.WEIGHT)
        if (codes.BMI not in by_code and height and weight and 20.0 <= height <= 250.0
                and (codes.HEIGHT in by_code or codes.WEIGHT in by_code)):
            obs = (*obs, Observation(code=codes.BMI, value=bmi(weight, height), unit="kg/m2"))
        obs = flag_observations(obs, s.patient() if s else None, local_day(now), self.bp, temperature.site_of(m.status))
        out.append(Reading(at=now, device_id=device_id, station_id=station_id, kind=m.kind, observations=obs,
                           device_time=m.device_time, session_id=s.session_id if s else None,
                           status=m.status, raw=m.raw))
        return out

    @staticmethod
    def bind(reading_uid: str, session_id: str, by: str, now: int) -> ReadingBound:
        """Staff attaches an unbound reading to a session."""
        return ReadingBound(at=now, reading_uid=reading_uid, session_id=session_id, by=by)
