"""Scripted patients: synthetic people with realistic measurements and valid ID cards.

Every value is synthetic (random names, real area codes, computed check digits); no
real person is described. Distributions (means/SD, clipped to plausible ranges):

| group | height | weight | BP | pulse | temperature |
|---|---|---|---|---|---|
| adult woman | 158 ± 6 cm | BMI 22.5 ± 3 | 118/76 ± 14/9, age-related rise | 76 ± 9 | 36.6 ± 0.3 (4 % fever) |
| adult man | 170 ± 7 cm | BMI 23.5 ± 3 | 124/80 ± 14/9, age-related rise | 74 ± 9 | 36.6 ± 0.3 |
| child 1-14 y | growth curve 75 + 6.2/y ± 5 % | BMI 16 ± 1.5 | 100/62 ± 8/6 | 100 - 2/y ± 10 | 36.7 ± 0.3 |
| pregnant, 8-40 w | as adult woman | + 0.45 kg/week after week 12 | 112/70 ± 10/8 | 84 ± 9 | 36.7 ± 0.3 |

>>> p = make_patient(random.Random(1), "adult")
>>> len(p.national_id), p.national_id[:6].isdigit()
(18, True)
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Literal

from protocol.idnum import check_character

Group = Literal["adult", "child", "pregnant"]

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN_F = "秀英华玉兰桂芳丽敏静燕红霞梅琳婷雪慧颖晶欣怡佳妍雨萱梓涵"
GIVEN_M = "伟强军磊洋勇杰涛明超刚平辉鹏华飞鑫波宇浩然子轩俊博文"
ETHNIC_WEIGHTS = {"01": 91.0, "08": 1.4, "03": 0.8, "11": 0.8, "05": 0.8, "06": 0.7, "07": 0.7, "15": 0.7,
                  "04": 0.5, "02": 0.5, "10": 0.2}

#: area code -> (address prefix, issuing authority)
AREAS = {
    "110101": ("北京市东城区", "北京市公安局东城分局"),
    "310104": ("上海市徐汇区", "上海市公安局徐汇分局"),
    "440106": ("广东省广州市天河区", "广州市公安局天河分局"),
    "510107": ("四川省成都市武侯区", "成都市公安局武侯区分局"),
    "330106": ("浙江省杭州市西湖区", "杭州市公安局西湖区分局"),
    "420106": ("湖北省武汉市武昌区", "武汉市公安局武昌分局"),
}
STREETS = ["人民路", "解放路", "中山路", "建设路", "和平街", "长江路", "光明巷", "幸福里", "东风路", "滨江路"]


@dataclass(frozen=True)
class Patient:
    """One scripted person with a card and one set of measurements."""

    group: Group
    name: str
    sex: str  # GB/T 2261.1: "1" male, "2" female
    birth_date: dt.date
    ethnic_code: str
    address: str
    national_id: str
    authority: str
    valid_from: dt.date
    valid_to: dt.date | None  # None: 长期
    height_cm: float
    weight_kg: float
    systolic: int
    diastolic: int
    pulse: int
    temperature_c: float
    pregnant_weeks: int | None = None

    @property
    def mean_pressure(self) -> int:
        """Mean arterial pressure as a monitor computes it: DBP + (SBP - DBP) / 3."""
        return round(self.diastolic + (self.systolic - self.diastolic) / 3)

    @property
    def bmi(self) -> float:
        """Body mass index, one decimal."""
        return round(self.weight_kg / (self.height_cm / 100) ** 2, 1)

    def __repr__(self) -> str:  # synthetic, but keep the habit: no full ID in logs
        return f"Patient({self.group}, {self.name[0]}*, {self.national_id[:4]}…{self.national_id[-4:]})"


def id_number(area: str, birth: dt.date, sequence: int, sex: str) -> str:
    """A valid 18-character ID number; the 17th digit is odd for men, even for women."""
    seq = (sequence % 500) * 2 + (1 if sex == "1" else 0)
    first17 = f"{area}{birth:%Y%m%d}{seq:03d}"
    return first17 + check_character(first17)


def _clip(value: float, low: float, high: float) -> float:
    return max(low, min(high, value))


def make_patient(rng: random.Random, group: Group, today: dt.date | None = None) -> Patient:
    """One random patient of ``group``."""
    today = today or dt.date.today()
    sex = "2" if group == "pregnant" else rng.choice("12")
    if group == "child":
        age = rng.uniform(1.0, 14.0)
    elif group == "pregnant":
        age = rng.uniform(20.0, 42.0)
    else:
        age = rng.uniform(18.0, 85.0)
    birth = today - dt.timedelta(days=int(age * 365.25))
    area = rng.choice(list(AREAS))
    prefix, authority = AREAS[area]
    given = GIVEN_F if sex == "2" else GIVEN_M
    name = rng.choice(SURNAMES) + "".join(rng.choice(given) for _ in range(rng.choice((1, 2))))
    ethnic = rng.choices(list(ETHNIC_WEIGHTS), weights=list(ETHNIC_WEIGHTS.values()))[0]
    address = f"{prefix}{rng.choice(STREETS)}{rng.randint(1, 300)}号{rng.randint(1, 30)}栋{rng.randint(101, 2804)}室"
    number = id_number(area, birth, rng.randint(0, 499), sex)
    issued = today - dt.timedelta(days=rng.randint(30, 3000))
    years = 5 if age < 16 else 10 if age < 26 else 20 if age < 46 else None
    valid_to = None if years is None else issued.replace(year=issued.year + years, day=min(issued.day, 28))
    weeks = rng.randint(8, 40) if group == "pregnant" else None
    if group == "child":
        height = _clip(rng.gauss(75 + 6.2 * age, 0.05 * (75 + 6.2 * age)), 60, 185)
        weight = _clip(rng.gauss(16, 1.5), 12, 24) * (height / 100) ** 2
        sys_, dia = rng.gauss(100, 8), rng.gauss(62, 6)
        pulse, temp = rng.gauss(100 - 2 * age, 10), rng.gauss(36.7, 0.3)
    else:
        height = _clip(rng.gauss(158, 6) if sex == "2" else rng.gauss(170, 7), 140, 200)
        weight = _clip(rng.gauss(22.5 if sex == "2" else 23.5, 3.0), 16, 40) * (height / 100) ** 2
        rise = max(0.0, age - 40) * 0.5
        if group == "pregnant":
            weight += 0.45 * max(0, (weeks or 0) - 12)
            sys_, dia = rng.gauss(112, 10), rng.gauss(70, 8)
            pulse, temp = rng.gauss(84, 9), rng.gauss(36.7, 0.3)
        else:
            sys_ = rng.gauss(118 if sex == "2" else 124, 14) + rise
            dia = rng.gauss(76 if sex == "2" else 80, 9) + rise / 3
            pulse, temp = rng.gauss(75, 9), rng.gauss(36.6, 0.3)
        if rng.random() < 0.04:
            temp += rng.uniform(1.0, 2.5)
    dia = _clip(dia, 40, 130)
    sys_ = _clip(max(sys_, dia + 20), 70, 230)
    return Patient(
        group=group, name=name, sex=sex, birth_date=birth, ethnic_code=ethnic, address=address,
        national_id=number, authority=authority, valid_from=issued, valid_to=valid_to,
        height_cm=round(height, 1), weight_kg=round(weight, 1), systolic=round(sys_), diastolic=round(dia),
        pulse=round(_clip(pulse, 45, 180)), temperature_c=round(_clip(temp, 35.0, 41.5), 1),
        pregnant_weeks=weeks,
    )


def parse_mix(text: str) -> list[Group]:
    """``"adult,child,pregnant"`` or ``"adult=3,child=1"`` -> a weighted list of groups."""
    out: list[Group] = []
    for part in text.split(","):
        name, _, count = part.strip().partition("=")
        if name not in ("adult", "child", "pregnant"):
            raise ValueError(f"unknown patient group {name!r}: use adult, child or pregnant")
        out += [name] * (int(count) if count else 1)  # type: ignore[list-item]
    return out


def patients(seed: int = 0, mix: str = "adult=6,child=2,pregnant=2") -> PatientStream:
    """An endless, reproducible stream of patients drawn from ``mix``."""
    return PatientStream(random.Random(seed), parse_mix(mix))


class PatientStream:
    """Iterator of patients (reproducible for a seed)."""

    def __init__(self, rng: random.Random, groups: list[Group]) -> None:
        self.rng = rng
        self.groups = groups

    def __iter__(self) -> PatientStream:
        return self

    def __next__(self) -> Patient:
        return make_patient(self.rng, self.rng.choice(self.groups))
