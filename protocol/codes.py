"""Observation codes: LOINC code, canonical UCUM unit, display names, plausible range.

The table is the contract of DESIGN.md §3 plus the few extra codes the devices report
(body composition, head circumference). A value outside the plausible range is still
stored but flagged ``A`` by :func:`protocol.flags.flag_observation`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Code:
    """One observation type."""

    loinc: str
    unit: str  #: canonical UCUM unit
    en: str
    zh: str
    decimals: int  #: canonical values are rounded to this many decimals
    low: float  #: plausible range (device or entry error outside it)
    high: float


HEIGHT = "8302-2"
WEIGHT = "29463-7"
BMI = "39156-5"
SYSTOLIC = "8480-6"
DIASTOLIC = "8462-4"
MEAN_PRESSURE = "8478-0"
PULSE = "8867-4"
TEMPERATURE = "8310-5"
BODY_FAT = "41982-0"
HEAD_CIRCUMFERENCE = "9843-4"
CUFF_PRESSURE = "mchub-cuff"  #: intermediate cuff pressure, shown live, never synced as a result
#: body-composition components without a confirmed LOINC code (drivers/ble/body_composition.py)
BASAL_METABOLISM = "mchub-basal-metabolism"
MUSCLE_PERCENTAGE = "mchub-muscle-percentage"
MUSCLE_MASS = "mchub-muscle-mass"
FAT_FREE_MASS = "mchub-fat-free-mass"
SOFT_LEAN_MASS = "mchub-soft-lean-mass"
BODY_WATER_MASS = "mchub-body-water-mass"
IMPEDANCE = "mchub-impedance"

CODES: dict[str, Code] = {
    c.loinc: c
    for c in (
        Code(HEIGHT, "cm", "Body height", "身高", 1, 20.0, 250.0),
        Code(WEIGHT, "kg", "Body weight", "体重", 2, 0.3, 400.0),
        Code(BMI, "kg/m2", "Body mass index", "体重指数", 1, 5.0, 100.0),
        Code(SYSTOLIC, "mm[Hg]", "Systolic blood pressure", "收缩压", 0, 40.0, 300.0),
        Code(DIASTOLIC, "mm[Hg]", "Diastolic blood pressure", "舒张压", 0, 20.0, 220.0),
        Code(MEAN_PRESSURE, "mm[Hg]", "Mean arterial pressure", "平均动脉压", 0, 20.0, 260.0),
        Code(PULSE, "/min", "Heart rate", "心率", 0, 20.0, 300.0),
        Code(TEMPERATURE, "Cel", "Body temperature", "体温", 1, 25.0, 45.0),
        Code(BODY_FAT, "%", "Body fat percentage", "体脂率", 1, 1.0, 75.0),
        Code(HEAD_CIRCUMFERENCE, "cm", "Head circumference", "头围", 1, 20.0, 70.0),
        Code(CUFF_PRESSURE, "mm[Hg]", "Cuff pressure", "袖带压力", 0, 0.0, 320.0),
        Code(BASAL_METABOLISM, "kJ", "Basal metabolism", "基础代谢", 0, 1000.0, 25000.0),
        Code(MUSCLE_PERCENTAGE, "%", "Muscle percentage", "肌肉率", 1, 5.0, 90.0),
        Code(MUSCLE_MASS, "kg", "Muscle mass", "肌肉量", 2, 1.0, 200.0),
        Code(FAT_FREE_MASS, "kg", "Fat-free mass", "去脂体重", 2, 1.0, 250.0),
        Code(SOFT_LEAN_MASS, "kg", "Soft lean mass", "软瘦体重", 2, 1.0, 200.0),
        Code(BODY_WATER_MASS, "kg", "Body water mass", "身体水分", 2, 1.0, 200.0),
        Code(IMPEDANCE, "Ohm", "Bioelectrical impedance", "生物电阻抗", 1, 50.0, 3000.0),
    )
}


def code(loinc: str) -> Code:
    """Look a code up; raises KeyError naming the code when unknown."""
    try:
        return CODES[loinc]
    except KeyError:
        raise KeyError(f"unknown observation code {loinc!r}") from None
