"""The work list's candidate ranking (cloud.integration.candidates): pure, no database."""

from __future__ import annotations

from cloud.integration.candidates import Person, name_similarity, rank

BORN = "1949-12-31"
WHO = Person(0, "王秀英", BORN, "2")


def ids(people: list[Person], who: Person = WHO, **kw: int) -> list[int]:
    return [c.subject_id for c in rank(who, people, **kw)]


def test_the_same_name_ranks_above_a_similar_one_and_unlike_names_come_last() -> None:
    people = [Person(3, "张伟", BORN, "2"), Person(2, "王秀云", BORN, "2"), Person(1, "王秀英", BORN, "2")]
    ranked = rank(WHO, people)
    assert [c.subject_id for c in ranked] == [1, 2, 3]
    assert ranked[0].name_similarity == 1.0 and 0.6 < ranked[1].name_similarity < 0.7 and ranked[2].name_similarity == 0


def test_another_birth_date_or_another_known_sex_is_never_offered() -> None:
    assert ids([Person(1, "王秀英", "1949-12-30", "2"), Person(2, "王秀英", BORN, "1"),
                Person(3, "王秀英", None, "2")]) == []


def test_an_unknown_sex_is_offered_below_a_known_same_sex() -> None:
    ranked = rank(WHO, [Person(1, "王秀英", BORN, "0"), Person(2, "王秀英", BORN, "2")])
    assert [(c.subject_id, c.same_sex) for c in ranked] == [(2, True), (1, False)]
    assert ids([Person(1, "王秀英", BORN, "1")], Person(0, "王秀英", BORN, "9")) == [1]  # hers unknown: anyone that day


def test_without_a_birth_date_there_are_no_candidates() -> None:
    assert ids([Person(1, "王秀英", BORN, "2")], Person(0, "王秀英", None, "2")) == []
    assert ids([Person(1, "王秀英", BORN, "2")], Person(0, "王秀英", "", "2")) == []


def test_ties_go_by_subject_id_and_the_list_is_bounded() -> None:
    same = [Person(i, "王秀英", BORN, "2") for i in (9, 4, 7, 1, 3, 8)]
    assert ids(same) == [1, 3, 4, 7, 8]
    assert ids(same, limit=2) == [1, 3]


def test_name_likeness_ignores_spaces_and_case_and_handles_empty_names() -> None:
    assert name_similarity("Wang  Xiuying", "wang xiuying") == 1.0
    assert name_similarity("", "王秀英") == 0.0
    assert rank(Person(0, "", BORN, "2"), [Person(1, "王秀英", BORN, "2")])[0].name_similarity == 0.0
