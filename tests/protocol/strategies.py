"""Hypothesis strategies for protocol records (shared by the property tests)."""

from __future__ import annotations

from hypothesis import strategies as st

from protocol import codes
from protocol.model import Observation, Reading, ReadingBound, Record, SessionClosed, SessionOpened, Subject

_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
_ident = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=16)
_value = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)

observations = st.builds(
    Observation,
    code=st.sampled_from(sorted(codes.CODES)),
    value=_value,
    unit=st.sampled_from(["cm", "kg", "mm[Hg]", "Cel", "/min", "kg/m2"]),
    original_value=st.none() | _value,
    original_unit=st.none() | st.sampled_from(["kPa", "[lb_av]", "[degF]", "[in_i]"]),
    flag=st.none() | st.sampled_from(["N", "H", "L", "HH", "LL", "A"]),
)

subjects = st.builds(Subject, national_id=st.none() | st.just("11010519491231002X"), name=_text,
                     sex=st.sampled_from(["0", "1", "2", "9"]), address=st.none() | _text)


def _readings(at: int) -> st.SearchStrategy[Record]:
    return st.builds(
        Reading, at=st.just(at), device_id=_ident, station_id=_ident,
        kind=st.sampled_from(["blood_pressure", "temperature", "weight", "height_weight"]),
        observations=st.lists(observations, max_size=6).map(tuple),
        device_time=st.none() | st.just("2026-11-22T09:30:00"),
        session_id=st.none() | _ident, status=st.lists(_ident, max_size=3).map(tuple),
        raw=st.binary(max_size=64),
    )


def _record(at: int) -> st.SearchStrategy[Record]:
    return st.one_of(
        _readings(at),
        st.builds(SessionOpened, at=st.just(at), session_id=_ident, station_id=_ident, subject=subjects,
                  pregnant_weeks=st.none() | st.integers(0, 42)),
        st.builds(SessionClosed, at=st.just(at), session_id=_ident,
                  reason=st.sampled_from(["timeout", "next_card", "finished", "staff"])),
        st.builds(ReadingBound, at=st.just(at), reading_uid=_ident, session_id=_ident, by=_ident),
    )


@st.composite
def record_streams(draw: st.DrawFn, hub_id: str = "hub-1", epoch: int = 7) -> list[Record]:
    """1-12 consecutive records of one hub and epoch, seq from a random start, times ascending."""
    first = draw(st.integers(1, 2**40))
    t = draw(st.integers(1_600_000_000_000, 1_900_000_000_000))
    out: list[Record] = []
    for i in range(draw(st.integers(1, 12))):
        t += draw(st.integers(0, 600_000))
        rec = draw(_record(t))
        rec.hub_id, rec.epoch, rec.seq = hub_id, epoch, first + i
        if isinstance(rec, Reading):
            from protocol.ids import reading_uid

            rec.uid = reading_uid(hub_id, epoch, first + i, t)
        out.append(rec)
    return out
