"""The demo's scripted patients: adults, pregnant women and children, some of them abnormal.

The stream is reproducible for a seed. Every sixth patient is abnormal on purpose, in a
way the clinic should notice (hypertension, a severe-range blood pressure in a pregnant
woman before week 20 — which must send her to a nurse at once — an obese adult, an
underweight child), so the flags, the kiosk, the status page's alarm and the HIS messages
have something to show. With the default seed the 18th patient is that pregnant woman.

>>> people = scripted_patients(seed=1)
>>> [next(people).group for _ in range(4)]
['adult', 'pregnant', 'child', 'adult']
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from dataclasses import dataclass

from firmware_sim.patients import Group, Patient, make_patient

#: the order in which groups come to a station (then it repeats)
ROTATION: tuple[Group, ...] = ("adult", "pregnant", "child", "adult", "adult", "child", "pregnant", "adult")


@dataclass(frozen=True)
class Scripted:
    """A patient and what is unusual about her (empty when nothing)."""

    patient: Patient
    abnormal: str = ""

    @property
    def group(self) -> Group:
        """adult, pregnant or child."""
        return self.patient.group


def _abnormal(rng: random.Random, p: Patient) -> Scripted:
    """The same person with one abnormal finding that fits her group."""
    if p.group == "pregnant":
        return Scripted(dataclasses.replace(p, systolic=rng.randint(160, 172), diastolic=rng.randint(104, 114),
                                            pregnant_weeks=rng.randint(10, 19)),
                        "severe-range BP in pregnancy / 孕期血压重度升高")
    if p.group == "child":
        weight = round(13.0 * (p.height_cm / 100) ** 2, 1)  # BMI 13: thin for any age
        return Scripted(dataclasses.replace(p, weight_kg=weight), "underweight child / 儿童低体重")
    if rng.random() < 0.5:
        return Scripted(dataclasses.replace(p, systolic=rng.randint(160, 178), diastolic=rng.randint(100, 110)),
                        "hypertension grade 2 / 2级高血压")
    weight = round(31.0 * (p.height_cm / 100) ** 2, 1)
    return Scripted(dataclasses.replace(p, weight_kg=weight), "obesity BMI >= 28 / 肥胖")


def scripted_patients(seed: int = 0, abnormal_every: int = 6) -> Iterator[Scripted]:
    """An endless, reproducible stream of scripted patients."""
    rng = random.Random(seed)
    n = 0
    while True:
        group = ROTATION[n % len(ROTATION)]
        n += 1
        p = make_patient(rng, group)
        yield _abnormal(rng, p) if abnormal_every and n % abnormal_every == 0 else Scripted(p)
