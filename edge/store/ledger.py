"""The ledger: turns incoming events into seq-numbered records inside one SQLite transaction.

Synchronous code, run only by the writer thread (:mod:`edge.store.writer`), which owns
the single write connection. :meth:`Ledger.commit` takes a group of inputs, assigns
consecutive seqs, writes records, session and subject rows and the next seq, and commits
once (one fsync for the whole group).

A reading whose device gave its own clock and raw frame is stored at most once: a device
that resends after a lost acknowledgement (crash between commit and ack) gets the seq of
the stored copy back instead of a second record. A reading the device shows again after
a restart (``Measurement.repeats``) is checked against the last reading stored from that
device (:mod:`edge.store.repeats`), in the same transaction that stores readings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.base import Measurement
from edge.crashpoints import crashpoint
from edge.sessions import OpenSession, SessionManager
from edge.store import repeats
from edge.store.bodies import encode_body
from edge.store.schema import resend_key
from edge.store.seqtime import first_seq_since
from protocol import idnum
from protocol.ids import reading_uid
from protocol.model import Reading, ReadingBound, Record, SessionClosed, SessionOpened, Subject

log = logging.getLogger("edge.store")
TYPE = {Reading: 0, SessionOpened: 1, SessionClosed: 2, ReadingBound: 3}


@dataclass(slots=True)
class ReadingIn:
    """A measurement from a device of a station."""

    station_id: str
    device_id: str
    m: Measurement
    #: for a ``repeats`` measurement: ms since its driver started; it was on show by then, so a
    #: session opened later never gets it (None: unknown)
    on_show_ms: int | None = None


@dataclass(slots=True)
class IdentifyIn:
    """An ID card, QR code or staff entry at a station (opens a session)."""

    station_id: str
    subject: Subject
    pregnant_weeks: int | None = None
    actor: str = "device"


@dataclass(slots=True)
class CloseIn:
    """Close the station's open session (finished, staff)."""

    station_id: str
    reason: str = "finished"


@dataclass(slots=True)
class BindIn:
    """Staff binds an unbound reading to a session."""

    reading_uid: str
    session_id: str
    by: str


@dataclass(slots=True)
class TickIn:
    """Close sessions whose window has passed."""


@dataclass(slots=True)
class CallIn:
    """Any other write (store an ack, prune, audit, frame error), in its own transaction."""

    fn: Callable[[sqlite3.Connection], Any]


Item = ReadingIn | IdentifyIn | CloseIn | BindIn | TickIn | CallIn


class InputRejected(ValueError):
    """One input of a group could not be applied (the rest of the group is unaffected)."""


def dedup_key(device_id: str, m: Measurement) -> int | None:
    """Key that identifies a resent copy of the same device record, when the device gives enough
    (device, device time and frame: :func:`edge.store.schema.resend_key`)."""
    if not m.device_time or not m.raw:
        return None
    return resend_key(f"{device_id}|{m.device_time}|{hashlib.blake2b(m.raw, digest_size=8).hexdigest()}")


def uid_time_ms(uid: str) -> int | None:
    """The unix-ms timestamp of a UUIDv7 string (None when it is not one)."""
    try:
        return int(uid.replace("-", "")[:12], 16)
    except ValueError:
        return None


def subject_aad(seq: int) -> bytes:
    """Associated data binding an encrypted body to its seq (a body moved to another row fails)."""
    return b"mchub/record/%d" % seq


class Ledger:
    """Seq assignment and record storage on the write connection."""

    def __init__(self, conn: sqlite3.Connection, sessions: SessionManager,
                 encrypt: Callable[[bytes, bytes], bytes], clock: Callable[[], int] | None = None,
                 subject_tag: Callable[[Subject], str | None] | None = None) -> None:
        self.conn = conn
        self.sessions = sessions
        self.encrypt = encrypt
        #: keyed hash of a subject (None: none); the same card again continues the station's open session
        self.subject_tag = subject_tag or (lambda _subject: None)
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._load()

    def _load(self) -> None:
        self.hub_id, self.epoch, self.next_seq = self.conn.execute(
            "SELECT hub_id, epoch, next_seq FROM sync_state WHERE id = 1").fetchone()
        ours = {s.session_id for s in self.sessions.open.values() if not s.restored}  # reloaded after a rollback
        self.sessions.open.clear()
        for row in self.conn.execute("SELECT session_id, station_id, opened_at, last_at, pregnant_weeks, height_cm, "
                                     "weight_kg, subject_tag, age_days, sex FROM sessions WHERE closed_at IS NULL"):
            sid, station, opened, last_at, weeks, height, weight, tag, age, sex = row
            self.sessions.open[station] = OpenSession(sid, station, opened, last_at, weeks, height, weight,
                                                      subject_tag=tag, restored=sid not in ours, age_days=age,
                                                      sex=sex)

    def commit(self, items: list[Item]) -> list[Any]:
        """Apply a group in one transaction; returns one result (or InputRejected) per input."""
        now = self.clock()
        rows: list[tuple[Any, ...]] = []
        results: list[Any] = []
        batch_keys: dict[int, int] = {}
        seen: list[tuple[int, int, int]] = []
        touched: dict[str, OpenSession] = {}
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            keys = [dedup_key(i.device_id, i.m) if isinstance(i, ReadingIn) else None for i in items]
            known = self._known_keys(keys)
            last = repeats.load(c, {i.device_id for i in items if isinstance(i, ReadingIn)})
            last_changed: dict[str, repeats.Last] = {}
            for item, key in zip(items, keys, strict=True):
                if isinstance(item, ReadingIn):
                    if key is not None:
                        old = batch_keys.get(key) or known.get(key)
                        if old is not None:
                            results.append(old)
                            continue
                    fp = repeats.fingerprint(item.m)
                    when = repeats.taken_by(item.m, now)
                    prev = last.get(item.device_id)
                    bind_by = when
                    if item.m.repeats and when is None and item.on_show_ms is not None:
                        bind_by = now - max(0, item.on_show_ms)  # on show since before its driver started
                    if item.m.repeats:
                        if prev is not None and repeats.same(prev, fp, when):
                            log.info("device %s shows its last reading (seq %d) again: stored once", item.device_id,
                                     prev.seq)
                            results.append(prev.seq)  # shown again after a restart: stored already
                            continue
                        if prev is None and when is None:
                            bind_by = repeats.UNKNOWN_TIME  # no memory of this device: taken who knows when
                    recs = self.sessions.reading(item.station_id, item.device_id, item.m, now, bind_by)
                    if (bind_by is not None and item.station_id in self.sessions.open
                            and isinstance(recs[-1], Reading) and recs[-1].session_id is None):
                        log.warning("device %s: a reading taken before station %s's open session was opened is "
                                    "kept unbound (staff can bind it)", item.device_id, item.station_id)
                    seq = self._add(recs, rows)
                    last[item.device_id] = last_changed[item.device_id] = repeats.Last(fp, when, seq)
                    if key is not None:
                        batch_keys[key] = seq
                        seen.append((key, seq, now))
                    s = self.sessions.open.get(item.station_id)
                    if s is not None:
                        touched[s.session_id] = s
                    results.append(seq)
                elif isinstance(item, IdentifyIn):
                    recs = self.sessions.identify(item.station_id, item.subject, now, item.pregnant_weeks,
                                                  self.subject_tag(item.subject))
                    self._add(recs, rows)
                    if recs and isinstance(recs[-1], SessionOpened):
                        results.append(recs[-1].session_id)
                    else:  # the same person again: the open session continues
                        s = self.sessions.open[item.station_id]
                        touched[s.session_id] = s
                        results.append(s.session_id)
                elif isinstance(item, CloseIn):
                    recs = self.sessions.close_station(item.station_id, item.reason, now)
                    self._add(recs, rows)
                    results.append(len(recs))
                elif isinstance(item, BindIn):
                    results.append(self._bind(item, rows, now))
                elif isinstance(item, TickIn):
                    self._add(self.sessions.expire(now), rows)
                    results.append(None)
            if rows:
                c.executemany("INSERT INTO records (seq, type, at, station_id, device_id, session_id, enc, body) "
                              "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
                if seen:
                    c.executemany("INSERT INTO seen (key, seq, at) VALUES (?, ?, ?)", seen)
                if last_changed:
                    repeats.save(c, last_changed, now)
                c.execute("UPDATE sync_state SET next_seq = ? WHERE id = 1", (self.next_seq,))
            if touched:
                c.executemany("UPDATE sessions SET last_at = ?, height_cm = ?, weight_kg = ? WHERE session_id = ?",
                              [(s.last_at, s.height_cm, s.weight_kg, s.session_id) for s in touched.values()])
            crashpoint("inside_commit")
            c.execute("COMMIT")
        except BaseException:
            if c.in_transaction:
                c.execute("ROLLBACK")
            self._load()
            raise
        return results

    def _known_keys(self, keys: list[int | None]) -> dict[int, int]:
        """Which of these resend keys are already stored (one query, the keys as one JSON array: a
        statement per group size filled the connection's statement cache, up to 128 of them, issue 21)."""
        wanted = [k for k in keys if k is not None]
        if not wanted:
            return {}
        return dict(self.conn.execute("SELECT key, seq FROM seen WHERE key IN (SELECT value FROM json_each(?))",
                                      (json.dumps(wanted),)))

    def _add(self, recs: list[Record], rows: list[tuple[Any, ...]]) -> int:
        seq = 0
        for r in recs:
            seq = self.next_seq
            self.next_seq += 1
            if isinstance(r, Reading):
                rows.append((seq, 0, r.at, r.station_id, r.device_id, r.session_id, 0, encode_body(r)))
            elif isinstance(r, SessionOpened):
                rows.append((seq, 1, r.at, r.station_id, None, r.session_id, 1,
                             self.encrypt(encode_body(r), subject_aad(seq))))
                self._open_session_rows(r)
            elif isinstance(r, SessionClosed):
                rows.append((seq, 2, r.at, None, None, r.session_id, 0, encode_body(r)))
                self.conn.execute("UPDATE sessions SET closed_at = ?, close_reason = ? WHERE session_id = ?",
                                  (r.at, r.reason, r.session_id))
            else:
                rows.append((seq, 3, r.at, None, None, r.session_id, 0, encode_body(r)))
        return seq

    def _open_session_rows(self, r: SessionOpened) -> None:
        subj = r.subject
        cur = self.conn.execute(  # the whole subject is in the session's record, encrypted
            "INSERT INTO subjects (id_masked, name_masked, sex) VALUES (?, ?, ?)",
            (idnum.mask(subj.national_id) if subj.national_id else None, idnum.mask_name(subj.name), subj.sex))
        s = self.sessions.open.get(r.station_id)
        mine = s is not None and s.session_id == r.session_id
        tag, age, sex = (s.subject_tag, s.age_days, s.sex) if s is not None and mine else (None, None, None)
        self.conn.execute("INSERT INTO sessions (session_id, station_id, opened_at, last_at, source, pregnant_weeks, "
                          "subject_id, subject_tag, age_days, sex) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (r.session_id, r.station_id, r.at, r.at, subj.source, r.pregnant_weeks, cur.lastrowid, tag,
                           age, sex))

    def find_reading(self, uid: str) -> tuple[int, str | None] | None:
        """(seq, session id) of the reading with this uid. The uid's timestamp is the reading's
        time, so only readings of that millisecond are candidates (uids are not stored)."""
        at = uid_time_ms(uid)
        if at is None:
            return None
        c = self.conn
        where = ("seq >= ? AND seq < ? AND ", (first_seq_since(c, at), first_seq_since(c, at + 1)))
        for bound, args in (where, ("", ())):  # then a scan: a reading stored after the wall clock was set back
            for seq, session in c.execute(f"SELECT seq, session_id FROM records WHERE {bound}at = ? AND type = 0",  # noqa: S608
                                          (*args, at)):
                if reading_uid(self.hub_id, self.epoch, seq, at) == uid:
                    return seq, session
        return None

    def _bind(self, item: BindIn, rows: list[tuple[Any, ...]], now: int) -> Any:
        c = self.conn
        found = self.find_reading(item.reading_uid)
        if found is None:
            return InputRejected(f"no reading with uid {item.reading_uid} is kept on this hub")
        reading_seq, bound_to = found
        if bound_to is not None:
            return InputRejected(f"reading {item.reading_uid} is already bound to session {bound_to}")
        if c.execute("SELECT 1 FROM sessions WHERE session_id = ?", (item.session_id,)).fetchone() is None:
            return InputRejected(f"no session {item.session_id} on this hub")
        seq = self._add([self.sessions.bind(item.reading_uid, item.session_id, item.by, now)], rows)
        c.execute("UPDATE records SET session_id = ? WHERE seq = ?", (item.session_id, reading_seq))
        c.execute("INSERT INTO audit (at, kind, actor, detail) VALUES (?, 'bind', ?, ?)",
                  (now, item.by, f"reading {item.reading_uid} bound to session {item.session_id} (seq {seq})"))
        return seq
