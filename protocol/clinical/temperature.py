"""Body temperature by measurement site and, for infants, by age (pure, table-driven).

The rules live in ``data/temperature_sites.toml``, each with its source (诊断学 for the normal
ranges by site and the fever grades, Sund-Levander et al. 2002 for the ear's normal range, NICE
NG143 and the 2016 Chinese guideline on fever in children under five for rectal and ear fever and
for infants). Sites are the names the devices report
(BLE Health Thermometer temperature type: ``armpit``, ``mouth``, ``rectum``, ``tympanum``...)
mapped to the table's sites; a device that reports no site gets the clinic triage rule.

Classes: ``normal``, ``high`` (fever), ``very_high`` (high fever), ``low`` (below 35 ℃,
hypothermia at any site), ``recheck`` (a forehead screening reading at or above the triage point:
measure again at the armpit) and ``infant_fever`` (urgent: fever under 3 months).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from protocol.errors import ReferenceTableError
from protocol.model import Flag

HYPOTHERMIA_BELOW = 35.0  #: core temperature below 35 ℃ is hypothermia at every site
SITES = ("axillary", "oral", "rectal", "tympanic", "forehead", "unknown")

#: device-reported site names (drivers/ble/thermometer.py ``site_<name>``) to table sites
DEVICE_SITES: dict[str, str] = {
    "armpit": "axillary",
    "axillary": "axillary",
    "mouth": "oral",
    "oral": "oral",
    "rectum": "rectal",
    "rectal": "rectal",
    "tympanum": "tympanic",
    "ear": "tympanic",
    "tympanic": "tympanic",
    "forehead": "forehead",
    "temporal": "forehead",
}


@dataclass(frozen=True, slots=True)
class SiteRule:
    site: str
    normal: tuple[float, float]
    fever_from: float | None  #: None: this site only screens (see recheck_from)
    recheck_from: float | None
    high_fever_from: float
    source: str


@dataclass(frozen=True, slots=True)
class InfantRule:
    urgent_under_days: int
    urgent_from: float
    nurse_under_days: int
    nurse_from: float
    source: str


@dataclass(frozen=True, slots=True)
class TemperatureResult:
    flag: Flag
    word: str  #: normal / high / very_high / low / recheck / infant_fever
    low: float
    high: float
    source: str
    urgent: bool = False


def _float(d: dict[str, Any], key: str, where: str) -> float:
    v = d.get(key)
    if not isinstance(v, int | float):
        raise ReferenceTableError(f"temperature table: {where}.{key} must be a number")
    return float(v)


@cache
def _table() -> tuple[dict[str, SiteRule], InfantRule]:
    raw = (
        resources.files("protocol.clinical")
        .joinpath("data")
        .joinpath("temperature_sites.toml")
        .read_text(encoding="utf-8")
    )
    doc = tomllib.loads(raw)
    rules: dict[str, SiteRule] = {}
    for site in SITES:
        d = doc.get("site", {}).get(site)
        if not isinstance(d, dict):
            raise ReferenceTableError(f"temperature table: no [site.{site}]")
        normal = d.get("normal")
        if not (isinstance(normal, list) and len(normal) == 2):
            raise ReferenceTableError(f"temperature table: site.{site}.normal must be [low, high]")
        fever = _float(d, "fever_from", site) if "fever_from" in d else None
        recheck = _float(d, "recheck_from", site) if "recheck_from" in d else None
        if (fever is None) == (recheck is None):
            raise ReferenceTableError(f"temperature table: site.{site} needs exactly one of fever_from, recheck_from")
        rules[site] = SiteRule(
            site,
            (float(normal[0]), float(normal[1])),
            fever,
            recheck,
            _float(d, "high_fever_from", site),
            str(d.get("source", "")),
        )
    i = doc.get("infant")
    if not isinstance(i, dict):
        raise ReferenceTableError("temperature table: no [infant]")
    infant = InfantRule(
        int(_float(i, "urgent_under_days", "infant")),
        _float(i, "urgent_from", "infant"),
        int(_float(i, "nurse_under_days", "infant")),
        _float(i, "nurse_from", "infant"),
        str(i.get("source", "")),
    )
    return rules, infant


def site_of(status: tuple[str, ...] | list[str] | None) -> str:
    """The table site of a reading from its device status (``site_armpit`` ...); ``unknown`` if none."""
    for s in status or ():
        if s.startswith("site_"):
            return DEVICE_SITES.get(s[5:], "unknown")
    return "unknown"


def infant_rule() -> InfantRule:
    """The infants' rows (NICE NG143): under which age a fever is urgent, and from what temperature."""
    return _table()[1]


def rule_for(site: str) -> SiteRule:
    rules, _ = _table()
    return rules.get(site, rules["unknown"])


def classify(celsius: float, site: str = "unknown", age_days: int | None = None) -> TemperatureResult:
    """One temperature judged for the site it was taken at and, under 6 months, for the infant's age."""
    rule = rule_for(site)
    _, infant = _table()
    low, high = rule.normal
    if celsius < HYPOTHERMIA_BELOW:
        return TemperatureResult("L", "low", low, high, rule.source)
    if age_days is not None and age_days < infant.urgent_under_days and celsius >= infant.urgent_from:
        return TemperatureResult("HH", "infant_fever", low, high, infant.source, urgent=True)
    if celsius >= rule.high_fever_from:
        return TemperatureResult("HH", "very_high", low, high, rule.source)
    if age_days is not None and age_days < infant.nurse_under_days and celsius >= infant.nurse_from:
        return TemperatureResult("HH", "very_high", low, high, infant.source)
    if rule.recheck_from is not None and celsius >= rule.recheck_from:
        return TemperatureResult("H", "recheck", low, high, rule.source)
    if rule.fever_from is not None and celsius >= rule.fever_from:
        return TemperatureResult("H", "high", low, high, rule.source)
    return TemperatureResult("N", "normal", low, high, rule.source)
