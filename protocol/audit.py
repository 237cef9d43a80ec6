"""Hash-chained, append-only audit entries: who saw or changed what, provably unaltered.

Each entry carries the SHA-256 of its predecessor, and its own hash covers its content
and that link, so altering, deleting or reordering any stored entry breaks every hash
after it. A store keeps entries in ``seq`` order and runs :func:`verify_chain` on demand:
the cloud's (``mchub cloud audit verify``, :mod:`cloud.audit.chain`); the hub's audit table
is not chained yet and has no such command.
Pruning after the retention period keeps the chain checkable: the first retained entry's
``prev`` is recorded as the new anchor.

Entries name people and objects by id (user name, reading uid, subject id) and never
hold a national ID number or a patient's name.
"""

from __future__ import annotations

import hashlib

import msgspec

GENESIS = "0" * 64


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One audited action."""

    seq: int
    at_ms: int
    actor: str  #: user name, "hub:<id>", "system"
    action: str  #: stable id, e.g. "reading.bind", "subject.view", "hub.revoke", "batch.refused"
    target: str = ""  #: what it concerned, e.g. a reading uid or hub id
    detail: dict[str, str] = {}
    prev: str = GENESIS  #: hash of the previous entry
    hash: str = ""


_encoder = msgspec.json.Encoder(order="sorted")


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 over the canonical JSON of every field except ``hash`` (so it covers ``prev``)."""
    content = msgspec.structs.replace(entry, hash="")
    return hashlib.sha256(_encoder.encode(content)).hexdigest()


def append(prev: AuditEntry | None, *, at_ms: int, actor: str, action: str, target: str = "",
           detail: dict[str, str] | None = None) -> AuditEntry:
    """The entry that follows ``prev`` (None: the first entry of a new chain)."""
    entry = AuditEntry(seq=(prev.seq + 1) if prev else 1, at_ms=at_ms, actor=actor, action=action,
                       target=target, detail=detail or {}, prev=prev.hash if prev else GENESIS)
    return msgspec.structs.replace(entry, hash=entry_hash(entry))


def verify_chain(entries: list[AuditEntry], anchor: str = GENESIS) -> int | None:
    """Index of the first entry that breaks the chain, or None when all is intact.

    ``anchor`` is the ``prev`` the first entry must have (GENESIS unless older entries were
    pruned). A gap in ``seq`` also counts as a break.
    """
    expected_prev = anchor
    for i, entry in enumerate(entries):
        if entry.prev != expected_prev or entry.hash != entry_hash(entry):
            return i
        if i and entry.seq != entries[i - 1].seq + 1:
            return i
        expected_prev = entry.hash
    return None
