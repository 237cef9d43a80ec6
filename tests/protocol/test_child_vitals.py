"""Children's heart rate (Fleming 2011) and temperature by site and age, against the published tables.

Sources: Fleming S et al., Lancet 2011;377:1011-18, table 2 (heart-rate centiles); 诊断学 第9版
(人民卫生出版社 2018) normal temperature by site and fever grades; NICE NG143 (2019) table 1 for
infants; the rows of protocol/clinical/data/temperature_sites.toml.
"""

from __future__ import annotations

import datetime as dt

import pytest

from protocol import codes
from protocol.clinical import heart_rate, temperature
from protocol.clinical.interpret import interpret
from protocol.clinical.patient import Patient
from protocol.model import Observation

MONTH = 365.25 / 12

# Fleming 2011 table 2: age band (months), 1st centile, median, 99th centile
FLEMING = [
    (0, 3, 107, 143, 181),
    (3, 6, 104, 140, 175),
    (6, 9, 98, 134, 168),
    (9, 12, 93, 128, 161),
    (12, 18, 88, 123, 156),
    (18, 24, 82, 116, 149),
    (24, 36, 76, 110, 142),
    (36, 48, 70, 104, 136),
    (48, 72, 65, 98, 131),
    (72, 96, 59, 91, 123),
    (96, 144, 52, 84, 115),
    (144, 180, 47, 78, 108),
    (180, 216, 43, 73, 104),
]


@pytest.mark.parametrize(("lo", "hi", "p1", "p50", "p99"), FLEMING)
def test_every_fleming_band(lo: int, hi: int, p1: int, p50: int, p99: int) -> None:
    """Each band of table 2: its median is normal, above the 99th centile high, below the 1st low."""
    for months in (lo + 0.1, (lo + hi) / 2, hi - 0.1):
        days = round(months * MONTH)
        band = heart_rate.band_for(days)
        assert band is not None and (band.p1, band.p50, band.p99) == (p1, p50, p99), months
        assert heart_rate.classify(days, p50).flag == "N"  # type: ignore[union-attr]
        assert heart_rate.classify(days, p99).flag == "N"  # type: ignore[union-attr]
        assert heart_rate.classify(days, p99 + 1).flag == "H"  # type: ignore[union-attr]
        assert heart_rate.classify(days, p1 - 1).flag == "L"  # type: ignore[union-attr]


def test_from_18_years_the_table_ends() -> None:
    assert heart_rate.classify(int(216 * MONTH) + 1, 120) is None


def test_an_infant_at_150_is_normal_and_a_teenager_at_110_is_high() -> None:
    """Adult 60-100 would call the infant "fast": Fleming's 0-3 months median is 143."""
    on = dt.date(2026, 12, 7)
    baby = Patient(birth_date=on - dt.timedelta(days=40), sex="F")
    teen = Patient(birth_date=dt.date(2011, 1, 1), sex="M")
    assert interpret((Observation(code=codes.PULSE, value=150, unit="/min"),), baby, on)[codes.PULSE].flag == "N"
    got = interpret((Observation(code=codes.PULSE, value=110, unit="/min"),), teen, on)[codes.PULSE]
    assert (got.flag, got.klass, got.low, got.high) == ("H", "pulse.high", 43, 104)


# (site, celsius, expected class) for an adult, one row per rule of temperature_sites.toml
ADULT = [
    ("axillary", 36.0, "normal"),
    ("axillary", 37.2, "normal"),
    ("axillary", 37.3, "high"),
    ("axillary", 39.0, "high"),
    ("axillary", 39.1, "very_high"),
    ("oral", 37.2, "normal"),
    ("oral", 37.3, "high"),
    ("oral", 39.1, "very_high"),
    ("rectal", 37.7, "normal"),
    ("rectal", 37.9, "normal"),
    ("rectal", 38.0, "high"),
    ("rectal", 39.1, "very_high"),
    ("tympanic", 37.3, "normal"),
    ("tympanic", 37.8, "normal"),
    ("tympanic", 37.9, "normal"),
    ("tympanic", 38.0, "high"),
    ("tympanic", 39.0, "high"),
    ("tympanic", 39.1, "very_high"),
    ("tympanic", 34.9, "low"),
    ("forehead", 37.2, "normal"),
    ("forehead", 37.3, "recheck"),
    ("forehead", 39.1, "very_high"),
    ("unknown", 37.3, "high"),
    ("unknown", 34.9, "low"),
    ("axillary", 34.9, "low"),
]


@pytest.mark.parametrize(("site", "celsius", "word"), ADULT)
def test_temperature_by_site(site: str, celsius: float, word: str) -> None:
    assert temperature.classify(celsius, site).word == word


def test_normal_ranges_by_site_follow_the_textbook() -> None:
    """诊断学 第9版: 口测法 36.3~37.2, 肛测法 36.5~37.7, 腋测法 36~37 ℃."""
    assert temperature.rule_for("oral").normal == (36.3, 37.2)
    assert temperature.rule_for("rectal").normal == (36.5, 37.7)
    assert temperature.rule_for("axillary").normal == (36.0, 37.0)
    assert temperature.rule_for("tympanic").normal == (35.4, 37.8)  # Sund-Levander 2002: tympanic 35.4-37.8 ℃
    assert all(temperature.rule_for(s).source for s in temperature.SITES)


@pytest.mark.parametrize(
    ("age_days", "celsius", "word", "urgent"),
    [
        (30, 38.0, "infant_fever", True),  # NICE NG143 red: < 3 months and >= 38 ℃
        (90, 38.0, "infant_fever", True),
        (91, 38.0, "high", False),
        (120, 39.0, "very_high", False),  # amber: 3-6 months and >= 39 ℃ sends the family to a nurse
        (182, 39.0, "very_high", False),
        (183, 39.0, "high", False),
        (30, 37.9, "high", False),
    ],
)
def test_infants_by_age(age_days: int, celsius: float, word: str, urgent: bool) -> None:
    got = temperature.classify(celsius, "axillary", age_days)
    assert (got.word, got.urgent) == (word, urgent)


def test_the_ear_follows_its_own_review_and_nice() -> None:
    """Sund-Levander et al., Scand J Caring Sci 2002;16:122-8: tympanic 35.4-37.8 ℃ (rectal 34.4-37.8 ℃ in
    the same review), so the ear's fever point is the rectal 38.0 ℃; NICE NG143 1.1.3 recommends the
    infra-red tympanic thermometer from 4 weeks to 5 years and its table 1 (>= 38 ℃ under 3 months, red)
    holds at the ear too."""
    ear = temperature.rule_for("tympanic")
    assert (ear.fever_from, ear.high_fever_from, ear.recheck_from) == (38.0, 39.1, None)
    assert ear.fever_from == temperature.rule_for("rectal").fever_from
    assert "Sund-Levander" in ear.source and "NG143" in ear.source
    baby = temperature.classify(38.0, "tympanic", 60)
    assert (baby.word, baby.urgent) == ("infant_fever", True)
    assert temperature.classify(37.9, "tympanic", 60).word == "normal"
    assert temperature.classify(39.0, "tympanic", 120).word == "very_high"  # NICE amber, 3-6 months


def test_the_device_site_reaches_the_judgement() -> None:
    """A BLE thermometer's temperature type (status ``site_rectum``) picks the rectal rule."""
    assert temperature.site_of(("site_rectum",)) == "rectal"
    assert temperature.site_of(("body_movement", "site_tympanum")) == "tympanic"
    assert temperature.site_of(("site_unknown_12",)) == temperature.site_of(()) == "unknown"
    t = (Observation(code=codes.TEMPERATURE, value=37.8, unit="Cel"),)
    assert interpret(t, temperature_site="rectal")[codes.TEMPERATURE].flag == "N"
    assert interpret(t)[codes.TEMPERATURE].flag == "H"
    assert interpret(t, temperature_site="tympanic")[codes.TEMPERATURE].flag == "N"


def test_a_feverish_baby_is_urgent_on_the_kiosk() -> None:
    on = dt.date(2026, 12, 7)
    baby = Patient(birth_date=on - dt.timedelta(days=50), sex="M")
    got = interpret((Observation(code=codes.TEMPERATURE, value=38.2, unit="Cel"),), baby, on)[codes.TEMPERATURE]
    assert (got.klass, got.urgent, got.flag) == ("temperature.infant_fever", True, "HH")
