"""Station sessions: what opens, what closes, what binds, which flags (DESIGN.md §3)."""

from __future__ import annotations

from drivers.base import Measurement
from edge.sessions import SessionManager, thresholds
from protocol import codes
from protocol.model import Observation, Reading, SessionClosed, SessionOpened, Subject

PATIENT = Subject(national_id="11010519491231002X", name="李娜", sex="2")


def weight(kg: float) -> Measurement:
    return Measurement(kind="weight", observations=(Observation(code=codes.WEIGHT, value=kg, unit="kg"),))


def height(cm: float) -> Measurement:
    return Measurement(kind="height", observations=(Observation(code=codes.HEIGHT, value=cm, unit="cm"),))


def bp(s: float, d: float) -> Measurement:
    return Measurement(kind="blood_pressure", observations=(
        Observation(code=codes.SYSTOLIC, value=s, unit="mm[Hg]"),
        Observation(code=codes.DIASTOLIC, value=d, unit="mm[Hg]")))


def test_card_opens_reading_binds_next_card_closes() -> None:
    m = SessionManager({"room-1": 60_000})
    [opened] = m.identify("room-1", PATIENT, now=1_000)
    assert isinstance(opened, SessionOpened)
    [r] = m.reading("room-1", "bp-1", bp(120, 80), now=2_000)
    assert isinstance(r, Reading) and r.session_id == opened.session_id
    closed, opened2 = m.identify("room-1", PATIENT, now=3_000)
    assert isinstance(closed, SessionClosed) and closed.reason == "next_card"
    assert closed.session_id == opened.session_id != opened2.session_id  # type: ignore[union-attr]


def test_idle_session_times_out_and_later_readings_stay_unbound() -> None:
    m = SessionManager({"room-1": 60_000})
    m.identify("room-1", PATIENT, now=0)
    m.reading("room-1", "bp-1", bp(120, 80), now=50_000)  # activity extends the window
    assert m.expire(now=100_000) == []
    closed, r = m.reading("room-1", "bp-1", bp(120, 80), now=200_000)
    assert isinstance(closed, SessionClosed) and closed.reason == "timeout"
    assert isinstance(r, Reading) and r.session_id is None


def test_other_station_does_not_bind() -> None:
    m = SessionManager({})
    m.identify("room-1", PATIENT, now=0)
    [r] = m.reading("room-2", "bp-9", bp(120, 80), now=1)
    assert r.session_id is None  # type: ignore[union-attr]


def test_bmi_is_derived_once_height_and_weight_are_both_known_in_a_session() -> None:
    m = SessionManager({})
    m.identify("room-1", PATIENT, now=0)
    [h] = m.reading("room-1", "st-1", height(160.0), now=1)
    assert [o.code for o in h.observations] == [codes.HEIGHT]  # type: ignore[union-attr]
    [w] = m.reading("room-1", "st-1", weight(70.0), now=2)
    bmi = {o.code: o for o in w.observations}[codes.BMI]  # type: ignore[union-attr]
    assert bmi.value == 27.3 and bmi.flag == "H"  # overweight (24-27.9)


def test_flags_bp_class_fever_and_pregnancy() -> None:
    m = SessionManager({}, bp=thresholds("2018"))
    [r] = m.reading("room-1", "bp-1", bp(185, 95), now=0)
    assert {o.flag for o in r.observations} == {"HH"}  # type: ignore[union-attr]
    m.identify("room-1", PATIENT, now=1, pregnant_weeks=30)
    [r] = m.reading("room-1", "bp-1", bp(145, 85), now=2)
    assert {o.flag for o in r.observations} == {"H"}  # type: ignore[union-attr]
    t = Measurement(kind="temperature", observations=(Observation(code=codes.TEMPERATURE, value=38.0, unit="Cel"),))
    [r] = m.reading("room-1", "th-1", t, now=3)
    assert r.observations[0].flag == "H"  # type: ignore[union-attr]
    assert thresholds("2022").grade_1 == (130, 80)


def child_id(born: str, sex_digit: int) -> str:
    """A valid ID number for a child born on ``born`` (YYYYMMDD); odd 17th digit = male."""
    from protocol.idnum import check_character

    first17 = f"110105{born}00{sex_digit}"
    return first17 + check_character(first17)


def test_a_child_is_flagged_by_who_references_not_adult_cut_offs() -> None:
    """The issue's 4-year-old: BMI 16.1 and pulse 105 are normal for him; adult rules said low/high."""
    import datetime as dt

    from edge.sessions import CHINA

    now = int(dt.datetime(2026, 12, 6, 10, 0, tzinfo=CHINA).timestamp() * 1000)
    m = SessionManager({})
    m.identify("room-1", Subject(national_id=child_id("20221101", 1), name="小明", sex="1"), now=now)
    s = m.open["room-1"]
    assert (s.age_days, s.sex) == ((dt.date(2026, 12, 6) - dt.date(2022, 11, 1)).days, "M")
    [r] = m.reading("room-1", "st-1", Measurement(kind="height_weight", observations=(
        Observation(code=codes.HEIGHT, value=102.6, unit="cm"), Observation(code=codes.WEIGHT, value=17.0, unit="kg"),
        Observation(code=codes.PULSE, value=105, unit="/min"))), now=now + 1000)
    flags = {o.code: o.flag for o in r.observations}  # type: ignore[union-attr]
    assert flags[codes.BMI] == "N" and flags[codes.WEIGHT] == "N"
    assert flags[codes.PULSE] == "N"  # 105 is inside the 1st-99th centile at 4 years (Fleming 2011), not adult "high"


def test_an_adult_without_a_birth_date_keeps_adult_rules() -> None:
    m = SessionManager({})
    m.identify("room-1", Subject(name="王五", source="staff"), now=0)
    [r] = m.reading("room-1", "bp-1", bp(150, 95), now=1)
    assert {o.flag for o in r.observations} == {"H"}  # type: ignore[union-attr]
