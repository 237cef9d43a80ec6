"""Five-colour pregnancy risk grading: one test per row of the 2017 national assessment table.

Source of every row: 国卫办妇幼发〔2017〕35号 附件2《孕产妇妊娠风险评估表》 (item numbers below
are that table's). The combination rule is the table's footnote: the highest colour wins,
purple stands beside any other colour.
"""

from __future__ import annotations

import pytest

from protocol.clinical.risk import Colour, Facts, Lab, facts_from, grade, table

#: item id -> (facts that meet the row, facts just outside it)
ROWS: dict[str, tuple[Facts, Facts]] = {
    "yellow-1.1": (Facts(age_years=35), Facts(age_years=34)),  # 年龄≥35岁或≤18岁
    "yellow-1.2": (Facts(bmi=25.1), Facts(bmi=25.0)),  # BMI>25或<18.5
    "yellow-2.6.1": (Facts(labs=(Lab("777-3", 80, "10*9/L"),)), Facts(labs=(Lab("777-3", 101, "10*9/L"),))),
    "yellow-2.6.2": (Facts(labs=(Lab("718-7", 9.8, "g/dL"),)), Facts(labs=(Lab("718-7", 111, "g/L"),))),
    "orange-1.1": (Facts(age_years=40), Facts(age_years=39)),  # 年龄≥40岁
    "orange-1.2": (Facts(bmi=28.0), Facts(bmi=27.9)),  # BMI≥28
    "orange-2.6.1": (Facts(labs=(Lab("777-3", 35, "10*3/uL"),)), Facts(labs=(Lab("777-3", 51, "10*3/uL"),))),
    "orange-2.6.2": (Facts(labs=(Lab("718-7", 55, "g/L"),)), Facts(labs=(Lab("718-7", 61, "g/L"),))),
    "orange-3.7": (Facts(diagnoses=("O14.1",)), Facts(diagnoses=("O13",))),  # 重度子痫前期 vs gestational hypertension
    "red-1.6.1": (Facts(diagnoses=("D61.9",)), Facts(diagnoses=("D64.9",))),  # aplastic vs unspecified anaemia
    "red-1.6.2": (Facts(labs=(Lab("777-3", 29, "10*9/L"),)), Facts(labs=(Lab("777-3", 30, "10*9/L"),))),
    "red-1.6.3": (Facts(labs=(Lab("718-7", 4.0, "g/dL"),)), Facts(labs=(Lab("718-7", 41, "g/L"),))),
    "red-1.6.4": (Facts(diagnoses=("C92.0",)), Facts(diagnoses=("D72.8",))),  # AML vs other white-cell disorder
    "red-1.6.6": (Facts(diagnoses=("O22.3",)), Facts(diagnoses=("O22.4",))),  # deep vein thrombosis vs haemorrhoids
    "red-1.9": (Facts(diagnoses=("C50.9",)), Facts(diagnoses=("Z85.3",))),  # breast cancer vs its history
    "purple": (Facts(diagnoses=("O98.7",)), Facts(diagnoses=("O99.0",))),  # HIV in pregnancy vs anaemia
}


def test_every_row_of_the_shipped_table_has_a_test() -> None:
    assert {i.id for i in table().items} == set(ROWS)
    assert table().source.startswith("国卫办妇幼发〔2017〕35号")


@pytest.mark.parametrize("item_id", sorted(ROWS))
def test_row(item_id: str) -> None:
    item = table().item(item_id)
    assert item is not None and item.text
    inside, outside = ROWS[item_id]
    assert item in grade(inside).items
    assert item not in grade(outside).items


def test_age_18_and_bmi_18_4_are_yellow_too() -> None:
    assert grade(Facts(age_years=18)).colour is Colour.YELLOW
    assert grade(Facts(bmi=18.4)).colour is Colour.YELLOW


def test_green_when_nothing_matches() -> None:
    g = grade(Facts(age_years=28, bmi=21.0, labs=(Lab("718-7", 125, "g/L"),)))
    assert (g.colour, g.purple, g.items) == (Colour.GREEN, False, ())
    assert g.labels == ["green"]


def test_the_highest_colour_wins_and_purple_stands_beside_it() -> None:
    g = grade(Facts(age_years=41, bmi=26.0, diagnoses=("B18.1",)))
    assert g.colour is Colour.ORANGE and g.purple
    assert [i.id for i in g.items] == ["orange-1.1", "yellow-1.1", "yellow-1.2", "purple"]
    assert g.labels == ["orange", "purple"]


def test_boundary_between_yellow_and_orange_goes_up() -> None:
    """Hb 60 g/L is in both the yellow (60-110) and the orange (40-60) row: orange."""
    assert grade(Facts(labs=(Lab("718-7", 60, "g/L"),))).colour is Colour.ORANGE


def test_staff_confirmation_adds_a_row_a_machine_cannot_judge() -> None:
    assert grade(Facts(confirmed=("orange-3.7",))).colour is Colour.ORANGE


def test_results_in_units_the_table_does_not_know_are_not_guessed() -> None:
    assert grade(Facts(labs=(Lab("718-7", 6.0, "mmol/L"),))).colour is Colour.GREEN


def test_facts_from_plain_rows() -> None:
    f = facts_from(age_years=30, bmi=None, labs=[{"loinc": "718-7", "value": 9.8, "unit": "g/dL"},
                                                {"loinc": "777-3", "value": "n/a", "unit": "10*9/L"}])
    assert f.labs == (Lab("718-7", 9.8, "g/dL"),)
    assert grade(f).colour is Colour.YELLOW


def test_raised() -> None:
    from protocol.clinical.risk import raised

    assert raised(("yellow", False), ("red", False)) and raised((None, False), ("orange", False))
    assert raised(("orange", False), ("orange", True))  # purple newly found
    assert not raised(("red", False), ("orange", False)) and not raised(("yellow", False), ("yellow", False))
    assert not raised((None, False), ("green", False))


def test_hb_40_is_red_not_orange() -> None:
    """Orange says Hb 40-60 g/L, red Hb <= 40: at 40 both hold and the higher colour wins."""
    g = grade(Facts(labs=(Lab("718-7", 40, "g/L"),)))
    assert g.colour is Colour.RED and [i.id for i in g.items] == ["red-1.6.3", "orange-2.6.2"]

