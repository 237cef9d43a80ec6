"""Plain-language meaning of a patient's results for the kiosk (pure; judgements from protocol.clinical).

Each shown row has a level the patient can act on:

* ``ok``     normal for this person
* ``watch``  slightly high or low: mention it to the doctor (adult BP grade 1, low BP, fever
             < 39, pulse outside 60-100, adult BMI outside 18.5-23.9, a child's weight for size
             outside WHO's normal band, weight gain outside WS/T 801-2022)
* ``nurse``  please see the nurse now (BP grade 2-3, any hypertension in pregnancy, the
             severe range in pregnancy at any week, fever >= 39, hypothermia, a child severely
             wasted or thin, an implausible value that needs measuring again)
* ``info``   a plain measurement without a judgement (height, adult weight, and a child's
             blood pressure or pulse while no paediatric table is loaded)

Who was measured decides the rule (:func:`protocol.clinical.interpret.interpret`): a child is
never judged by adult cut-offs. The meaning key is ``meaning.<class>`` of that judgement, so
the wording fits the group (a child's growth class talks to the parent).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol import codes
from protocol.clinical import temperature
from protocol.clinical.interpret import Interpretation, interpret
from protocol.clinical.patient import Patient
from protocol.flags import GUIDELINE_2018, BpThresholds
from protocol.model import Observation

#: what the patient sees, in this order (mean arterial pressure and device codes are not shown)
SHOWN = (codes.SYSTOLIC, codes.PULSE, codes.TEMPERATURE, codes.HEIGHT, codes.WEIGHT, codes.BMI)
#: classes whose flag alone would say "watch" but that need the nurse the same day
_NURSE = {"bp.grade_2", "bp.grade_3", "pregnancy.pregnancy_hypertension", "pregnancy.hypertension_before_20",
          "pregnancy.pregnancy_severe", "temperature.low", "temperature.very_high", "temperature.infant_fever",
          "temperature.recheck"}


@dataclass(frozen=True)
class Row:
    """One result line: ``label``, ``meaning`` and ``unit.<unit>`` are catalog keys (``unit`` is UCUM)."""

    label: str
    value: str
    unit: str
    level: str
    meaning: str


@dataclass(frozen=True)
class Shown:
    """One shown value before judging: ``label`` a catalog key, ``unit`` UCUM, ``sources`` the stored
    observations it shows (systolic and diastolic for a blood pressure)."""

    code: str
    label: str
    value: str
    unit: str
    sources: tuple[Mapping[str, Any], ...]


def latest_values(readings: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The latest stored observation of each code (a later value of a kind replaces an earlier one)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for reading in readings:
        for o in reading["observations"]:
            latest[o["code"]] = o
    return latest


def shown(latest: Mapping[str, Mapping[str, Any]]) -> list[Shown]:
    """What people are shown of ``latest``, in :data:`SHOWN` order; systolic and diastolic as one
    blood pressure (the kiosk and the status page both show values this way)."""
    out = []
    for code in SHOWN:
        o = latest.get(code)
        if o is None:
            continue
        if code == codes.SYSTOLIC:
            dia = latest.get(codes.DIASTOLIC)
            if dia is None:
                continue
            out.append(Shown(code, "obs.bp", f"{fmt(o['value'], 0)}/{fmt(dia['value'], 0)}", "mm[Hg]", (o, dia)))
        else:
            out.append(Shown(code, f"obs.{code}", fmt(o["value"], 0 if code == codes.PULSE else 1), o["unit"], (o,)))
    return out


def fmt(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals (0: a whole number)."""
    return f"{value:.{digits}f}" if digits else f"{round(value):d}"


def level(j: Interpretation) -> str:
    """ok / watch / nurse / info for one judgement."""
    if j.urgent or j.klass in _NURSE or j.flag in ("HH", "LL", "A"):
        return "nurse"
    if j.flag is None:
        return "info"
    return "ok" if j.flag == "N" else "watch"


def rows(readings: Iterable[Mapping[str, Any]], bp: BpThresholds = GUIDELINE_2018,
         patient: Patient | None = None, on: dt.date | None = None) -> list[Row]:
    """The rows for a session's readings; a later value of the same kind replaces an earlier one."""
    readings = list(readings)
    latest = latest_values(readings)
    site = next((temperature.site_of(r.get("status")) for r in reversed(readings)  # where the temperature shown
                 if any(o["code"] == codes.TEMPERATURE for o in r["observations"])), "unknown")  # was taken
    judged = interpret(tuple(Observation(code=o["code"], value=float(o["value"]), unit=o["unit"])
                             for o in latest.values()), patient, on, bp, site)
    out = []
    for line in shown(latest):
        code = line.code
        flags = {o.get("flag") for o in line.sources} | {judged[o["code"]].flag for o in line.sources
                                                        if o["code"] in judged}
        label, value, unit = line.label, line.value, line.unit
        j = judged.get(code)
        if "A" in flags or (j is not None and j.flag == "A"):
            out.append(Row(label, value, unit, "nurse", "meaning.again"))
        elif j is None or j.klass is None:
            out.append(Row(label, value, unit, "info", ""))
        else:
            out.append(Row(label, value, unit, level(j), f"meaning.{j.klass}"))
    return out


def worst(result_rows: Iterable[Row]) -> str:
    """The level of the summary: nurse beats watch beats ok."""
    levels = {r.level for r in result_rows}
    return "nurse" if "nurse" in levels else "watch" if "watch" in levels else "ok"
