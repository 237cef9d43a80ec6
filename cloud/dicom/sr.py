"""Structured Report content: flattened text and the BI-RADS assessment, pure.

The content tree (PS3.3 C.17.3) is walked depth-first into one line per content item,
``"<concept>: <value>"``, indented by depth. Depth and total size are bounded, because
the tree comes from outside.

BI-RADS (ACR, 5th edition) categories are 0-6 with 4 split into 4A/4B/4C. A coded
assessment — a CODE item whose concept name mentions "assessment" or "BI-RADS", valued
with a SNOMED CT "Mammography assessment (Category n)" code or a meaning such as
"Category 4B" or "4A - Low suspicion" — wins over text; otherwise the text is searched
for "BI-RADS 4A", "BI-RADS分类：3类" and the like. When several categories are found
the most severe is kept (:data:`SEVERITY`).

>>> find_birads_in_text("乳腺超声：BI-RADS分类 4a类，建议活检")
'4A'
>>> find_birads_in_text("BI-RADS 5th edition lexicon") is None
True
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydicom.dataset import Dataset

MAX_DEPTH = 32
MAX_TEXT_CHARS = 64 * 1024

#: from least to most severe; "0" (incomplete, recall) ranks above the benign categories
SEVERITY = ("1", "2", "3", "0", "4", "4A", "4B", "4C", "5", "6")

_TEXT_RE = re.compile(
    r"BI[\s\-_]?RADS[®\s]*(?:category|cat\.?|assessment|分类|类别|评估|分级|级)?\s*[:：=]?\s*"
    r"([0-6])\s*([ABCabc])?(?![0-9A-Za-z])",
    re.IGNORECASE,
)
_CODE_MEANING_RE = re.compile(
    r"^\s*(?:BI[\s\-_]?RADS[®\s]*)?(?:category|cat\.?)?\s*([0-6])\s*([ABCabc])?(?![0-9A-Za-z])",
    re.IGNORECASE,
)
_CATEGORY_WORD_RE = re.compile(r"(?:category|cat\.?)\s*\(?\s*([0-6])\s*([ABCabc])?(?![0-9A-Za-z])", re.IGNORECASE)
#: SNOMED CT "Mammography assessment (Category n)" findings
SNOMED_CATEGORIES = {
    "397138000": "0", "397140005": "1", "397141009": "2", "397143007": "3", "397144001": "4", "397145000": "5",
}
_ASSESSMENT_CONCEPT_RE = re.compile(r"assessment|bi[\s\-_]?rads|评估|分类", re.IGNORECASE)


def _first(seq: object) -> Dataset | None:
    if isinstance(seq, Iterable):
        for item in seq:
            if isinstance(item, Dataset):
                return item
    return None


def _meaning(item: Dataset, keyword: str) -> str:
    code = _first(item.get(keyword))
    return str(code.get("CodeMeaning", "")) if code is not None else ""


def _value(item: Dataset) -> str:
    vt = str(item.get("ValueType", ""))
    if vt == "TEXT":
        return str(item.get("TextValue", ""))
    if vt == "CODE":
        return _meaning(item, "ConceptCodeSequence")
    if vt == "NUM":
        mv = _first(item.get("MeasuredValueSequence"))
        if mv is None:
            return ""
        unit = _first(mv.get("MeasurementUnitsCodeSequence"))
        unit_text = str(unit.get("CodeValue", "")) if unit is not None else ""
        return f"{mv.get('NumericValue', '')} {unit_text}".strip()
    if vt == "PNAME":
        return str(item.get("PersonName", ""))
    if vt == "DATE":
        return str(item.get("Date", ""))
    if vt == "TIME":
        return str(item.get("Time", ""))
    if vt == "DATETIME":
        return str(item.get("DateTime", ""))
    if vt == "UIDREF":
        return str(item.get("UID", ""))
    return ""


def walk(ds: Dataset) -> Iterable[tuple[int, Dataset]]:
    """Every content item of the tree under ``ds`` with its depth (0 = the document root)."""
    stack: list[tuple[int, Dataset]] = [(0, ds)]
    while stack:
        depth, item = stack.pop()
        yield depth, item
        if depth >= MAX_DEPTH:
            continue
        children = item.get("ContentSequence")
        if isinstance(children, Iterable):
            kids = [c for c in children if isinstance(c, Dataset)]
            stack.extend((depth + 1, c) for c in reversed(kids))


def flatten(ds: Dataset) -> str:
    """The SR document as indented ``concept: value`` lines, at most :data:`MAX_TEXT_CHARS`."""
    lines: list[str] = []
    size = 0
    for depth, item in walk(ds):
        concept = _meaning(item, "ConceptNameCodeSequence")
        value = _value(item)
        line = "  " * depth + (f"{concept}: {value}" if concept and value else concept or value)
        if not line.strip():
            continue
        size += len(line) + 1
        if size > MAX_TEXT_CHARS:
            lines.append("…")
            break
        lines.append(line)
    return "\n".join(lines)


def _category(match: re.Match[str] | None) -> str | None:
    if match is None:
        return None
    digit, letter = match.group(1), (match.group(2) or "").upper()
    return digit + letter if digit == "4" and letter else digit


def most_severe(categories: Iterable[str]) -> str | None:
    """The most severe of ``categories`` by :data:`SEVERITY`, or None."""
    found = [c for c in categories if c in SEVERITY]
    return max(found, key=SEVERITY.index) if found else None


def find_birads_in_text(text: str) -> str | None:
    """The most severe BI-RADS category mentioned in free text, or None."""
    return most_severe(c for m in _TEXT_RE.finditer(text) if (c := _category(m)) is not None)


def find_birads_coded(ds: Dataset) -> str | None:
    """The most severe BI-RADS category in CODE items whose concept is an assessment."""
    found: list[str] = []
    for _, item in walk(ds):
        if str(item.get("ValueType", "")) != "CODE":
            continue
        concept = _meaning(item, "ConceptNameCodeSequence")
        if not _ASSESSMENT_CONCEPT_RE.search(concept):
            continue
        code = _first(item.get("ConceptCodeSequence"))
        if code is None:
            continue
        meaning = str(code.get("CodeMeaning", ""))
        category = (
            SNOMED_CATEGORIES.get(str(code.get("CodeValue", "")))
            or _category(_CODE_MEANING_RE.match(meaning))
            or _category(_CATEGORY_WORD_RE.search(meaning))
            or find_birads_in_text(meaning)
        )
        if category is not None:
            found.append(category)
    return most_severe(found)
