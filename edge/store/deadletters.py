"""The hub's dead-letter list: records the cloud refused one by one (docs/protocol.md §3.1).

When an ack names refused records, :func:`edge.store.reader.store_ack` copies each one
here in the same transaction that moves the mark past it, so sync goes on and the record
is neither lost (pruning ``records`` does not touch this table) nor sent again. The status
page raises an alarm while any is open. Staff deal with each one:

* **resend** (readings only): the reading is stored again as a NEW record (new seq) with
  the status entry ``resent_of:<uid of the original>``, optionally without the
  observations of some codes (the correction); the original stays here, marked resolved.
* **dismiss**: the record is kept here, marked resolved, and is not sent again.

Both are audited with the staff member's name. Functions return closures for
:meth:`edge.store.writer.GroupWriter.call` (they run on the writer thread).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgspec

from edge.store.bodies import decode_body, encode_body, self_contained
from protocol.ids import reading_uid
from protocol.model import Reading

if TYPE_CHECKING:
    from edge.store.ledger import Ledger

RESENT_OF = "resent_of:"  #: status entry of a resent reading, followed by the original's uid


class DeadLetterError(ValueError):
    """A dead letter cannot be resent or dismissed as asked (the message says why)."""


def keep_refused(c: sqlite3.Connection, refused: Iterable[tuple[int, str]], at_ms: int) -> int:
    """Copy refused records into the list (inside the caller's transaction); returns how many are new."""
    new = 0
    for seq, reason in refused:
        row = c.execute("SELECT type, at, station_id, device_id, session_id, enc, body FROM records WHERE seq = ?",
                        (seq,)).fetchone()
        if row is None:
            continue
        kind, at, station, device, session, enc, body = row
        body = body if enc else self_contained(body, at, station, device, session)
        cur = c.execute("INSERT OR IGNORE INTO dead_letters (seq, type, at, station_id, device_id, enc, body, reason, "
                        "refused_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (seq, kind, at, station, device, enc, body, reason, at_ms))
        if cur.rowcount:
            new += 1
            c.execute("INSERT INTO audit (at, kind, actor, detail) VALUES (?, 'refused', 'cloud', ?)",
                      (at_ms, f"record seq {seq} refused by the cloud ({reason}); kept in the dead-letter list"))
    return new


def resend(ledger: Ledger, seq: int, by: str, drop_codes: tuple[str, ...], at_ms: int
           ) -> Callable[[sqlite3.Connection], int]:
    """Store dead letter ``seq`` (a reading) again as a new record; returns the new seq."""
    def run(c: sqlite3.Connection) -> int:
        row = c.execute("SELECT type, body, resolved_at FROM dead_letters WHERE seq = ?", (seq,)).fetchone()
        if row is None:
            raise DeadLetterError(f"no dead letter with seq {seq}")
        kind, body, resolved = row
        if resolved is not None:
            raise DeadLetterError(f"dead letter {seq} was already dealt with")
        if kind != 0:
            raise DeadLetterError(f"dead letter {seq} is not a reading: only readings can be resent; dismiss it")
        original = decode_body(body)
        assert isinstance(original, Reading)
        observations = tuple(o for o in original.observations if o.code not in drop_codes)
        if not observations:
            raise DeadLetterError(f"dead letter {seq}: dropping {', '.join(drop_codes)} leaves no observation")
        uid = reading_uid(ledger.hub_id, ledger.epoch, seq, original.at)
        again = msgspec.structs.replace(original, observations=observations,
                                        status=(*original.status, RESENT_OF + uid)[-32:])
        new_seq = int(ledger.next_seq)
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO records (seq, type, at, station_id, device_id, session_id, enc, body) "
                  "VALUES (?, 0, ?, ?, ?, ?, 0, ?)", (new_seq, again.at, again.station_id, again.device_id,
                                                      again.session_id, encode_body(again)))
        c.execute("UPDATE sync_state SET next_seq = ? WHERE id = 1", (new_seq + 1,))
        c.execute("UPDATE dead_letters SET resolved_at = ?, resolved_by = ?, resent_seq = ? WHERE seq = ?",
                  (at_ms, by, new_seq, seq))
        dropped = f" without {', '.join(drop_codes)}" if drop_codes else ""
        c.execute("INSERT INTO audit (at, kind, actor, detail) VALUES (?, 'dead_letter_resend', ?, ?)",
                  (at_ms, by, f"refused record seq {seq} resent as seq {new_seq}{dropped}"))
        c.execute("COMMIT")
        ledger.next_seq = new_seq + 1
        return new_seq
    return run


def dismiss(seq: int, by: str, at_ms: int) -> Callable[[sqlite3.Connection], None]:
    """Mark dead letter ``seq`` as dealt with without sending it again."""
    def run(c: sqlite3.Connection) -> None:
        cur = c.execute("UPDATE dead_letters SET resolved_at = ?, resolved_by = ? "
                        "WHERE seq = ? AND resolved_at IS NULL", (at_ms, by, seq))
        if not cur.rowcount:
            raise DeadLetterError(f"no open dead letter with seq {seq}")
        c.execute("INSERT INTO audit (at, kind, actor, detail) VALUES (?, 'dead_letter_dismiss', ?, ?)",
                  (at_ms, by, f"refused record seq {seq} dismissed (kept, not sent again)"))
    return run


def listing(c: sqlite3.Connection, open_only: bool = False, limit: int = 200) -> list[dict[str, Any]]:
    """The list, newest first: seq, time, station, device, reason, observations (readings), outcome."""
    if not _exists(c):
        return []
    rows = c.execute("SELECT seq, type, at, station_id, device_id, enc, body, reason, refused_at, resolved_at, "
                     "resolved_by, resent_seq FROM dead_letters WHERE resolved_at IS NULL OR ? = 0 "
                     "ORDER BY seq DESC LIMIT ?", (int(open_only), limit)).fetchall()
    out = []
    for seq, kind, at, station, device, enc, body, reason, refused_at, resolved_at, resolved_by, resent in rows:
        rec = None if enc else decode_body(body)  # subject-bearing records stay sealed
        obs = [{"code": o.code, "value": o.value, "unit": o.unit} for o in getattr(rec, "observations", ())]
        out.append({"seq": seq, "type": ("reading", "session_opened", "session_closed", "reading_bound")[kind],
                    "at": at, "station_id": station, "device_id": device, "reason": reason,
                    "refused_at": refused_at, "resolved_at": resolved_at, "resolved_by": resolved_by,
                    "resent_seq": resent, "observations": obs})
    return out


def open_count(c: sqlite3.Connection) -> int:
    """How many refused records wait for staff."""
    if not _exists(c):
        return 0
    return int(c.execute("SELECT count(*) FROM dead_letters WHERE resolved_at IS NULL").fetchone()[0])


def _exists(c: sqlite3.Connection) -> bool:
    """False for a hub.db the hub has not migrated yet (read by ``mchub edge status`` while it is stopped)."""
    found = c.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dead_letters'").fetchone()
    return found is not None
