"""The audit log: security-relevant events (refused batches, duplicates and replays,
registry changes, merges, dead-letter replays).

Entries never hold patient data: ``detail`` carries ids, counts and reason codes only.
:func:`write` runs inside the caller's transaction, so an entry exists exactly when the
change it describes was committed.
"""

from __future__ import annotations

import msgspec

from cloud.db.engine import Tx
from protocol.ids import now_ms

_INSERT = ("INSERT INTO audit_log (at_ms, actor, action, outcome, hub_id, subject_id, reason, detail, target) "
           "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")


async def write(tx: Tx, *, actor: str, action: str, outcome: str, hub_id: str | None = None,
                subject_id: int | None = None, reason: str | None = None,
                detail: dict[str, object] | None = None, target: str | None = None,
                at_ms: int | None = None) -> None:
    """Append one entry (in the caller's transaction); ``target`` names what was acted on (user, site, token)."""
    await tx.execute(_INSERT, now_ms() if at_ms is None else at_ms, actor, action, outcome, hub_id, subject_id,
                     reason, msgspec.json.encode(detail or {}).decode(), target)
