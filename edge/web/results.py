"""Plain-language meaning of a patient's results for the kiosk (pure; thresholds from protocol.flags).

Each shown row has a level the patient can act on:

* ``ok``     normal (blood pressure normal or high-normal, temperature, pulse, BMI in range)
* ``watch``  slightly high or low: mention it to the doctor (BP grade 1, low BP, fever < 39,
             pulse outside 60-100, BMI outside 18.5-23.9)
* ``nurse``  please see the nurse now (BP grade 2-3, hypertension in pregnancy, fever >= 39,
             hypothermia, an implausible value that needs measuring again)
* ``info``   a plain measurement without a judgement (height, weight)

Blood pressure is classified with :func:`protocol.flags.classify_bp` under the hub's
guideline and the session's pregnancy weeks, so the kiosk says what the record's flag says.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol import codes
from protocol.flags import GUIDELINE_2018, BpClass, BpThresholds, classify_bp

#: what the patient sees, in this order (mean arterial pressure and device codes are not shown)
SHOWN = (codes.SYSTOLIC, codes.PULSE, codes.TEMPERATURE, codes.HEIGHT, codes.WEIGHT, codes.BMI)
_BP_LEVEL = {BpClass.NORMAL: "ok", BpClass.HIGH_NORMAL: "ok", BpClass.GRADE_1: "watch", BpClass.LOW: "watch",
             BpClass.GRADE_2: "nurse", BpClass.GRADE_3: "nurse", BpClass.PREGNANCY_HYPERTENSION: "nurse",
             BpClass.PREGNANCY_SEVERE: "nurse"}


@dataclass(frozen=True)
class Row:
    """One result line: ``label``, ``meaning`` and ``unit.<unit>`` are catalog keys (``unit`` is UCUM)."""

    label: str
    value: str
    unit: str
    level: str
    meaning: str


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if digits else f"{round(value):d}"


def rows(readings: Iterable[Mapping[str, Any]], bp: BpThresholds = GUIDELINE_2018,
         pregnant_weeks: int | None = None) -> list[Row]:
    """The rows for a session's readings; a later value of the same kind replaces an earlier one."""
    latest: dict[str, dict[str, Any]] = {}
    for reading in readings:
        for o in reading["observations"]:
            latest[o["code"]] = o
    out = []
    for code in SHOWN:
        o = latest.get(code)
        if o is None:
            continue
        flag = o.get("flag")
        if code == codes.SYSTOLIC:
            dia = latest.get(codes.DIASTOLIC)
            if dia is None:
                continue
            value = f"{_fmt(o['value'], 0)}/{_fmt(dia['value'], 0)}"
            if "A" in (flag, dia.get("flag")):
                out.append(Row("obs.bp", value, "mm[Hg]", "nurse", "meaning.again"))
                continue
            cls = classify_bp(o["value"], dia["value"], bp, pregnant_weeks).bp_class
            out.append(Row("obs.bp", value, "mm[Hg]", _BP_LEVEL[cls], f"meaning.bp.{cls.value}"))
            continue
        digits = 0 if code == codes.PULSE else 1
        value, unit = _fmt(o["value"], digits), o["unit"]
        if flag == "A":
            out.append(Row(f"obs.{code}", value, unit, "nurse", "meaning.again"))
        elif code in (codes.HEIGHT, codes.WEIGHT):
            out.append(Row(f"obs.{code}", value, unit, "info", ""))
        else:
            level = "ok" if flag in (None, "N") else "nurse" if flag in ("HH", "LL") else "watch"
            if code == codes.TEMPERATURE and flag == "L":
                level = "nurse"
            direction = "low" if flag in ("L", "LL") else "high"
            out.append(Row(f"obs.{code}", value, unit, level,
                           "meaning.ok" if level == "ok" else f"meaning.{level}.{direction}"))
    return out


def worst(result_rows: Iterable[Row]) -> str:
    """The level of the summary: nurse beats watch beats ok."""
    levels = {r.level for r in result_rows}
    return "nurse" if "nurse" in levels else "watch" if "watch" in levels else "ok"
