"""The audit chain detects any alteration, deletion, insertion or reordering."""

from __future__ import annotations

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from protocol.audit import GENESIS, AuditEntry, append, entry_hash, verify_chain


def chain(n: int) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    for i in range(n):
        out.append(append(out[-1] if out else None, at_ms=1000 + i, actor="nurse", action="reading.bind",
                          target=f"r{i}", detail={"session": f"s{i}"}))
    return out


def test_intact_chain_verifies() -> None:
    entries = chain(10)
    assert verify_chain(entries) is None
    assert entries[0].prev == GENESIS and entries[5].prev == entries[4].hash


@given(st.integers(0, 9), st.sampled_from(["actor", "action", "target", "at_ms"]))
def test_altering_any_field_of_any_entry_is_detected(index: int, field: str) -> None:
    entries = chain(10)
    value = 1 if field == "at_ms" else "mallory"
    entries[index] = msgspec.structs.replace(entries[index], **{field: value})
    assert verify_chain(entries) == index


def test_deletion_reordering_and_rehashed_forgery_are_detected() -> None:
    entries = chain(10)
    assert verify_chain(entries[:3] + entries[4:]) == 3
    assert verify_chain([entries[1], entries[0], *entries[2:]]) == 0
    forged = msgspec.structs.replace(entries[3], actor="mallory")
    forged = msgspec.structs.replace(forged, hash=entry_hash(forged))
    assert verify_chain([*entries[:3], forged, *entries[4:]]) == 4  # the next link no longer matches


def test_pruned_chain_verifies_from_its_anchor() -> None:
    entries = chain(10)
    assert verify_chain(entries[4:]) == 0
    assert verify_chain(entries[4:], anchor=entries[3].hash) is None
