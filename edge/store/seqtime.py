"""Finding a time in hub.db's record stream without an index on ``records.at``."""

from __future__ import annotations

import sqlite3


def first_seq_since(conn: sqlite3.Connection, at_ms: int) -> int:
    """The first seq of the records written at ``at_ms`` or later (one past the last when there is none).

    A record's ``at`` is the hub's clock when it was written, and seqs are given in the same order, so
    ``at`` rises with seq and a bisection over the primary key finds the boundary in ~log2(n) lookups
    (the index on ``at`` this replaces cost every reading 14-18 B). After the wall clock was set back
    the order has a step in it; callers therefore keep their own ``at`` condition, and may then miss
    records written before the step that are newer than ``at_ms`` (a screen's list of today; pruning
    keeps such records one pass longer), never include an older one.

    The lookups run in one read transaction (unless the caller's is open): on their own, pruning could
    delete every record past ``min(seq)`` between two of them, and a lookup found nothing (a CI run's hub
    stopped on exactly that, its kiosk reading a session while sync pruned).
    """
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        lo, hi = conn.execute("SELECT min(seq), max(seq) FROM records").fetchone()
        if lo is None:
            return int(conn.execute("SELECT coalesce((SELECT next_seq FROM sync_state WHERE id = 1), 1)")
                       .fetchone()[0])
        hi += 1
        while lo < hi:
            mid = (lo + hi) // 2
            seq, at = conn.execute("SELECT seq, at FROM records WHERE seq >= ? ORDER BY seq LIMIT 1",
                                   (mid,)).fetchone()
            if at >= at_ms:
                hi = mid
            else:
                lo = seq + 1
        return int(lo)
    finally:
        if own:
            conn.execute("COMMIT")
