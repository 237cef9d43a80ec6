"""Read-side queries of hub.db (own connection; WAL lets them run beside the writer).

Used by the sync client (records after a seq), the status API and ``mchub edge status``.
Also the write helpers that run on the writer thread through :meth:`GroupWriter.call`
(store an ack, prune a chunk), so every SQL statement of the hub lives in edge/store/.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edge.store.bodies import decode_body
from edge.store.deadletters import keep_refused, listing, open_count
from edge.store.ledger import subject_aad
from edge.store.schema import connect
from edge.store.seqtime import first_seq_since
from protocol import codes
from protocol.clinical import temperature
from protocol.ids import reading_uid
from protocol.model import Reading, Record

#: how much older than its session a reading bound to it by staff is still counted on the session's row
BOUND_BACK_MS = 7 * 86_400_000


class Reader:
    """Thread-safe read connection."""

    def __init__(self, path: Path, decrypt: Callable[[bytes, bytes], bytes] | None = None,
                 readonly: bool = False) -> None:
        self.conn = connect(path, readonly=readonly)
        self.decrypt = decrypt
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection, after the read in progress (if any) ends.

        A read started with ``asyncio.to_thread`` goes on in its thread when the awaiting task is
        cancelled (as the hub's stop cancels its tasks); closing the connection under it crashed the
        process (SIGSEGV in sqlite3, seen once in a CI run). A read that comes after the close raises
        ``sqlite3.ProgrammingError`` instead.
        """
        with self._lock:
            self.conn.close()

    def _all(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self.conn.execute(sql, args).fetchall()

    def _since(self, sql: str, at_ms: int, *args: Any) -> list[tuple[Any, ...]]:
        """``sql`` whose first two parameters are ``seq >= ? AND at >= ?``, for the records since ``at_ms``."""
        with self._lock:
            return self.conn.execute(sql, (first_seq_since(self.conn, at_ms), at_ms, *args)).fetchall()

    def state(self) -> dict[str, Any]:
        """The sync_state row as a dict."""
        with self._lock:
            cur = self.conn.execute("SELECT * FROM sync_state WHERE id = 1")
            return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))

    def records(self, first_seq: int, limit: int, with_uid: bool = True) -> list[Record]:
        """Up to ``limit`` records from ``first_seq`` on, consecutive, with identity fields filled in.

        ``with_uid=False`` leaves each reading's ``uid`` empty: a sync batch does not carry it (the
        cloud derives it from hub, epoch, seq and time), and computing it was nearly half the cost
        of reading a batch.
        """
        st = self.state()
        hub_id, epoch = st["hub_id"], st["epoch"]
        rows = self._all("SELECT seq, enc, body, at, station_id, device_id, session_id FROM records WHERE seq >= ? "
                         "ORDER BY seq LIMIT ?", (first_seq, limit))
        out: list[Record] = []
        for seq, enc, body, *columns in rows:
            if out and seq != out[-1].seq + 1:
                break
            if enc:
                if self.decrypt is None:
                    raise ValueError("this reader has no data key for encrypted records")
                body = self.decrypt(body, subject_aad(seq))
            rec = decode_body(body, *columns)
            rec.hub_id, rec.epoch, rec.seq = hub_id, epoch, seq
            if with_uid and isinstance(rec, Reading):
                rec.uid = reading_uid(hub_id, epoch, seq, rec.at)
            out.append(rec)
        return out

    def first_kept_seq(self) -> int | None:
        """Lowest seq still stored (None when the table is empty)."""
        kept = self._all("SELECT min(seq) FROM records")[0][0]
        return int(kept) if kept is not None else None

    def oldest_unsynced_at(self) -> int | None:
        """Hub time (ms) of the oldest record the cloud has not acknowledged."""
        rows = self._all("SELECT at FROM records WHERE seq = (SELECT acked_through + 1 FROM sync_state)")
        return rows[0][0] if rows else None

    def sessions_since(self, since_ms: int, limit: int = 200) -> list[dict[str, Any]]:
        """Sessions opened since ``since_ms`` (masked subject only), newest first."""
        rows = self._all(
            "SELECT s.session_id, s.station_id, s.opened_at, s.closed_at, s.close_reason, s.source, "
            "s.pregnant_weeks, j.id_masked, j.name_masked "
            "FROM sessions s LEFT JOIN subjects j ON j.id = s.subject_id WHERE s.opened_at >= ? "
            "ORDER BY s.opened_at DESC LIMIT ?", (since_ms, limit))
        # one range scan of the time index for all the counts (a count per session scanned every record
        # per session); a reading staff bound later may be older than its session, by up to BOUND_BACK_MS
        counts = dict(self._since("SELECT session_id, count(*) FROM records WHERE seq >= ? AND at >= ? AND type = 0 "
                                  "AND session_id IN (SELECT value FROM json_each(?)) GROUP BY session_id",
                                  min((r[2] for r in rows), default=since_ms) - BOUND_BACK_MS,
                                  json.dumps([r[0] for r in rows])))
        keys = ("session_id", "station_id", "opened_at", "closed_at", "close_reason", "source", "pregnant_weeks",
                "id_masked", "name_masked", "readings")
        return [dict(zip(keys, (*r, counts.get(r[0], 0)), strict=True)) for r in rows]

    def unbound(self, limit: int = 200) -> list[dict[str, Any]]:
        """Readings not bound to any session, newest first (what staff may bind by hand)."""
        rows = self._all("SELECT seq, at, station_id, device_id, body FROM records "
                         "WHERE type = 0 AND session_id IS NULL ORDER BY seq DESC LIMIT ?", (limit,))
        st = self.state()
        out = []
        for seq, at, station, device, body in rows:
            uid = reading_uid(st["hub_id"], st["epoch"], seq, at)
            rec = decode_body(body)
            obs = [{"code": o.code, "value": o.value, "unit": o.unit, "flag": o.flag}
                   for o in getattr(rec, "observations", ())]
            out.append({"seq": seq, "uid": uid, "at": at, "station_id": station, "device_id": device,
                        "kind": getattr(rec, "kind", ""), "observations": obs})
        return out

    def current_session(self, station_id: str) -> dict[str, Any] | None:
        """The station's open session with its masked subject (the kiosk's view), or None."""
        rows = self._all(
            "SELECT s.session_id, s.opened_at, s.pregnant_weeks, j.name_masked, s.age_days, s.sex FROM sessions s "
            "LEFT JOIN subjects j ON j.id = s.subject_id WHERE s.station_id = ? AND s.closed_at IS NULL "
            "ORDER BY s.opened_at DESC LIMIT 1", (station_id,))
        if not rows:
            return None
        return dict(zip(("session_id", "opened_at", "pregnant_weeks", "name_masked", "age_days", "sex"), rows[0],
                        strict=True))

    def session_readings(self, session_id: str, opened_at: int) -> list[dict[str, Any]]:
        """The readings of an open session in seq order: device, time, observations (with flags), status.

        Only readings taken since ``opened_at`` (the time index keeps this cheap on a full store).
        """
        rows = self._since("SELECT at, device_id, body FROM records WHERE seq >= ? AND at >= ? AND type = 0 "
                           "AND session_id = ? ORDER BY seq", opened_at, session_id)
        out = []
        for at, device, body in rows:
            rec = decode_body(body)
            obs = [{"code": o.code, "value": o.value, "unit": o.unit, "flag": o.flag}
                   for o in getattr(rec, "observations", ())]
            out.append({"at": at, "device_id": device, "observations": obs,
                        "status": list(getattr(rec, "status", ()))})
        return out

    def session_readings_since(self, since_ms: int, session_ids: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
        """Readings of the sessions ``session_ids`` taken since ``since_ms``, by session id, in seq order
        (the status page's values of the visits it shows; one scan of the time index).

        Only the shown sessions' readings are decoded: all of a day's readings at once made every page
        load of a busy hub larger than the last, and the heap kept each new high-water mark (issue 21).
        """
        rows = self._since("SELECT session_id, at, device_id, body FROM records WHERE seq >= ? AND at >= ? "
                           "AND type = 0 AND session_id IN (SELECT value FROM json_each(?)) ORDER BY seq",
                           since_ms, json.dumps(list(session_ids)))
        out: dict[str, list[dict[str, Any]]] = {}
        for session_id, at, device, body in rows:
            obs = [{"code": o.code, "value": o.value, "unit": o.unit, "flag": o.flag}
                   for o in getattr(decode_body(body), "observations", ())]
            out.setdefault(session_id, []).append({"at": at, "device_id": device, "observations": obs})
        return out

    def last_readings(self) -> dict[str, dict[str, Any]]:
        """The latest stored reading of every device: time and observations (no subject)."""
        rows = self._all("SELECT r.device_id, r.at, r.body FROM last_reading l JOIN records r ON r.seq = l.seq "
                         "WHERE r.type = 0")  # the repeat filter's row per device names its last stored reading
        out = {}
        for device, at, body in rows:
            obs = [{"code": o.code, "value": o.value, "unit": o.unit, "flag": o.flag}
                   for o in getattr(decode_body(body), "observations", ())]
            out[device] = {"at": at, "observations": obs}
        return out

    def urgent_since(self, since_ms: int, limit: int = 50) -> list[dict[str, Any]]:
        """Readings since ``since_ms`` that need a nurse now, newest first: the status page's alarm.

        ``kind`` ``bp``: blood pressure judged critically high (HH: the severe range in pregnancy at
        any week, adult grade 3); ``infant_fever``: a fever in a baby under 3 months (NICE NG143 red,
        :mod:`protocol.clinical.temperature`), from the session's age.
        """
        infant_days = temperature.infant_rule().urgent_under_days
        out: list[dict[str, Any]] = []
        with self._lock:  # row by row: a day's readings are never all in memory at once
            for at, station, body, weeks, name, age_days in self.conn.execute(
                    "SELECT r.at, r.station_id, r.body, s.pregnant_weeks, j.name_masked, s.age_days FROM records r "
                    "LEFT JOIN sessions s ON s.session_id = r.session_id LEFT JOIN subjects j ON j.id = s.subject_id "
                    "WHERE r.seq >= ? AND r.at >= ? AND r.type = 0 ORDER BY r.seq DESC",
                    (first_seq_since(self.conn, since_ms), since_ms)):
                obs = {o.code: o for o in getattr(decode_body(body), "observations", ())}
                sys_, dia, temp = obs.get(codes.SYSTOLIC), obs.get(codes.DIASTOLIC), obs.get(codes.TEMPERATURE)
                entry = {"at": at, "station_id": station, "name_masked": name or "", "pregnant_weeks": weeks}
                if sys_ is not None and dia is not None and "HH" in (sys_.flag, dia.flag):
                    out.append({**entry, "kind": "bp", "value": f"{sys_.value:.0f}/{dia.value:.0f}"})
                elif temp is not None and temp.flag == "HH" and age_days is not None and age_days < infant_days:
                    out.append({**entry, "kind": "infant_fever", "value": f"{temp.value:.1f}"})
                if len(out) >= limit:
                    break
        return out

    def count_unbound(self) -> int:
        """How many readings are unbound."""
        return int(self._all("SELECT count(*) FROM records WHERE type = 0 AND session_id IS NULL")[0][0])

    def dead_letters(self, open_only: bool = False, limit: int = 200) -> list[dict[str, Any]]:
        """Records the cloud refused (:mod:`edge.store.deadletters`), newest first."""
        with self._lock:
            return listing(self.conn, open_only, limit)

    def count_dead_letters(self) -> int:
        """Refused records still waiting for staff (the status page's alarm)."""
        with self._lock:
            return open_count(self.conn)

    def audit(self, limit: int = 50, skip_kind: str | None = None) -> list[dict[str, Any]]:
        """Latest audit events (``skip_kind``: leave out one kind, e.g. ``view`` for a log of changes)."""
        rows = self._all("SELECT at, kind, actor, detail FROM audit WHERE kind IS NOT ? ORDER BY id DESC LIMIT ?",
                         (skip_kind, limit))
        return [dict(zip(("at", "kind", "actor", "detail"), r, strict=True)) for r in rows]


# --- writes, run on the writer thread via GroupWriter.call -------------------------------

def store_ack(acked_through: int, ack: bytes, at_ms: int,
              refused: tuple[tuple[int, str], ...] = ()) -> Callable[[sqlite3.Connection], int]:
    """Record a verified ack; the mark only moves forward. Returns the stored mark.

    Records the ack names as refused go to the dead-letter list in the same transaction
    (:mod:`edge.store.deadletters`): the mark never passes one that is not kept there.
    """
    def run(c: sqlite3.Connection) -> int:
        if refused:
            c.execute("BEGIN IMMEDIATE")
            keep_refused(c, refused, at_ms)
        c.execute("UPDATE sync_state SET acked_through = max(acked_through, ?), last_ack = ?, last_ack_ms = ?, "
                  "last_error = NULL WHERE id = 1", (acked_through, ack, at_ms))
        return int(c.execute("SELECT acked_through FROM sync_state WHERE id = 1").fetchone()[0])
    return run


def lower_mark(acked_through: int, detail: str, at_ms: int) -> Callable[[sqlite3.Connection], None]:
    """The cloud holds less than we believed (restored from backup): resend from its mark."""
    def run(c: sqlite3.Connection) -> None:
        c.execute("UPDATE sync_state SET acked_through = ? WHERE id = 1", (acked_through,))
        c.execute("INSERT INTO audit (at, kind, actor, detail) VALUES (?, 'cloud_behind', 'cloud', ?)", (at_ms, detail))
    return run


def record_error(message: str, at_ms: int) -> Callable[[sqlite3.Connection], None]:
    """Remember the last sync error (shown on the status page)."""
    def run(c: sqlite3.Connection) -> None:
        c.execute("UPDATE sync_state SET last_error = ?, last_error_ms = ? WHERE id = 1", (message, at_ms))
    return run


def prune_chunk(before_ms: int, limit: int) -> Callable[[sqlite3.Connection], int]:
    """Delete up to ``limit`` acknowledged records older than ``before_ms``; returns how many."""
    def run(c: sqlite3.Connection) -> int:
        cur = c.execute("DELETE FROM records WHERE seq IN (SELECT seq FROM records WHERE seq < ? "
                        "AND seq <= (SELECT acked_through FROM sync_state) AND at < ? ORDER BY seq LIMIT ?)",
                        (first_seq_since(c, before_ms), before_ms, limit))
        return cur.rowcount
    return run


#: free pages pruning leaves inside hub.db for the next inserts (1 MiB at 4 KiB pages); the rest goes back to
#: the file system, so a file that grew during weeks offline shrinks once the backlog is synced and pruned
KEEP_FREE_PAGES = 256


def prune_seen(before_ms: int, keep_seqs: int = 0,
               keep_free_pages: int = KEEP_FREE_PAGES) -> Callable[[sqlite3.Connection], int]:
    """The end of a pruning pass: forget device-resend keys older than ``before_ms``, except those of the
    last ``keep_seqs`` records (so a wall-clock jump forward, e.g. NTP at boot on a hub without a battery
    clock, forgets nothing recent); forget sessions (and their masked subjects) closed before the oldest
    record still kept and before ``before_ms``; hand free pages beyond ``keep_free_pages`` back to the
    file system. Returns how many keys were forgotten."""
    def run(c: sqlite3.Connection) -> int:
        c.execute("BEGIN IMMEDIATE")
        keys = c.execute("DELETE FROM seen WHERE at < ? AND seq < (SELECT next_seq FROM sync_state) - ?",
                         (before_ms, keep_seqs)).rowcount
        old = ("FROM sessions WHERE closed_at < ? AND closed_at < "
               "coalesce((SELECT at FROM records ORDER BY seq LIMIT 1), ?)")
        c.execute(f"DELETE FROM subjects WHERE id IN (SELECT subject_id {old})", (before_ms, before_ms))  # noqa: S608
        c.execute(f"DELETE {old}", (before_ms, before_ms))
        c.execute("COMMIT")
        give_back(c, keep_free_pages)
        return keys
    return run


def give_back(c: sqlite3.Connection, keep_free_pages: int = KEEP_FREE_PAGES) -> None:
    """Hand hub.db's free pages beyond ``keep_free_pages`` back to the file system (outside a transaction)."""
    free = int(c.execute("PRAGMA freelist_count").fetchone()[0])
    if free > keep_free_pages:
        # executescript steps the pragma to its end (execute() frees one page per step)
        c.executescript(f"PRAGMA incremental_vacuum({free - keep_free_pages});")


#: audit rows deleted per transaction: a first pass over years of rows is many short writes, not one long lock
AUDIT_PRUNE_CHUNK = 5000


def prune_audit(before_ms: int, limit: int = AUDIT_PRUNE_CHUNK) -> Callable[[sqlite3.Connection], int]:
    """Delete up to ``limit`` of the oldest audit rows written before ``before_ms``; returns how many.

    The hub's audit table is a plain log, not hash-chained (:mod:`protocol.audit`: only the cloud's log is),
    so dropping its oldest rows leaves no chain to re-anchor. Free pages are handed back when a pass deleted
    fewer than ``limit`` (its last chunk)."""
    def run(c: sqlite3.Connection) -> int:
        n = c.execute("DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < ? ORDER BY id LIMIT ?)",
                      (before_ms, limit)).rowcount
        if n < limit:
            give_back(c)
        return n
    return run


def frame_error(device_id: str, reason: str, message: str, raw: bytes,
                at_ms: int) -> Callable[[sqlite3.Connection], None]:
    """Keep a rejected device frame for inspection."""
    def run(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO frame_errors (at, device_id, reason, message, raw) VALUES (?, ?, ?, ?, ?)",
                  (at_ms, device_id, reason, message[:500], raw[:8192]))
    return run


def claim_command(command_id: str, name: str, detail: str, at_ms: int) -> Callable[[sqlite3.Connection], bool]:
    """Record a cloud command id before executing it; False when it was executed before."""
    def run(c: sqlite3.Connection) -> bool:
        cur = c.execute("INSERT INTO commands (id, name, at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                        (command_id, name, at_ms))
        if cur.rowcount:
            c.execute("INSERT INTO audit (at, kind, actor, detail) VALUES (?, 'command', 'cloud', ?)",
                      (at_ms, f"{name} {command_id} {detail}"))
        return cur.rowcount == 1
    return run


def finish_command(command_id: str, ok: bool, detail: str) -> Callable[[sqlite3.Connection], None]:
    """Store a command's outcome."""
    def run(c: sqlite3.Connection) -> None:
        c.execute("UPDATE commands SET ok = ?, detail = ? WHERE id = ?", (int(ok), detail, command_id))
    return run


def audit(kind: str, actor: str, detail: str, at_ms: int) -> Callable[[sqlite3.Connection], None]:
    """Append an audit event."""
    def run(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO audit (at, kind, actor, detail) VALUES (?, ?, ?, ?)", (at_ms, kind, actor, detail))
    return run
