"""Which known patients a waiting result most likely belongs to: a pure ranking, no I/O.

The work list offers staff the subjects that share the result's birth date and sex, ranked by
how alike the names are, so matching is a click rather than typing an 18-digit ID number.
A candidate whose known sex differs, or whose known birth date differs, is never offered; a
name alone (without the birth date) is not enough either — two 王芳 born in different years
are different people.

>>> who = Person(0, "王秀英", "1949-12-31", "2")
>>> [c.subject_id for c in rank(who, [Person(1, "王秀英", "1949-12-31", "2"),
...                                    Person(2, "王秀云", "1949-12-31", "2"),
...                                    Person(3, "王秀英", "1949-12-31", "1")])]
[1, 2]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher

UNKNOWN_SEX = ("", "0", "9")  #: GB/T 2261.1 codes that say nothing about the sex
NAME_WEIGHT, SEX_WEIGHT = 0.7, 0.3  #: a same-day birth is required; the name counts most after it


@dataclass(frozen=True)
class Person:
    """What the ranking compares: a subject id (0 for the result's patient), name, ISO birth date, sex code."""

    subject_id: int
    name: str
    birth_date: str | None
    sex: str


@dataclass(frozen=True)
class Candidate:
    """A subject offered for a waiting result, with why."""

    subject_id: int
    score: float  #: 0..1, higher is likelier
    name_similarity: float  #: 0..1
    same_sex: bool  #: both sexes known and equal


def name_similarity(a: str, b: str) -> float:
    """0..1 likeness of two names, by characters (Chinese names: 王秀英 / 王秀云 -> 0.67); spaces and case ignored."""
    x, y = ("".join(s.split()).casefold() for s in (a, b))
    if not x or not y:
        return 0.0
    return SequenceMatcher(None, x, y, autojunk=False).ratio()


def rank(who: Person, people: Iterable[Person], *, limit: int = 5) -> list[Candidate]:
    """The people who could be ``who``, likeliest first (score, then subject id); at most ``limit``."""
    if not who.birth_date:
        return []
    out = []
    for p in people:
        if p.birth_date != who.birth_date:
            continue
        both_known = who.sex not in UNKNOWN_SEX and p.sex not in UNKNOWN_SEX
        if both_known and who.sex != p.sex:
            continue
        similar = name_similarity(who.name, p.name)
        score = NAME_WEIGHT * similar + SEX_WEIGHT * (1.0 if both_known else 0.5)
        out.append(Candidate(p.subject_id, round(score, 3), round(similar, 2), both_known))
    out.sort(key=lambda c: (-c.score, c.subject_id))
    return out[:limit]
