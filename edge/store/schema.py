"""hub.db: opening, integrity check, quarantine, schema migrations.

Tables (one stream, a few side tables):

* ``records``    the seq stream: every reading, session opened/closed, reading bound.
                 ``body`` is the msgpack form of the record; subject-bearing bodies are
                 AES-256-GCM encrypted with the hub data key (``enc = 1``).
* ``sessions``   one row per station session (open while ``closed_at`` is NULL).
* ``subjects``   the identified person of a session: masked forms for screens, the whole
                 subject (with the ID number) only encrypted.
* ``sync_state`` one row: hub id, epoch, next seq, acked-through, the last signed ack.
* ``audit``      what happened that a person may ask about later (binds, commands,
                 quarantine, disk alarms).
* ``seen``       device records already stored (device id, device time, frame digest), so
                 a device that resends after a lost acknowledgement is not stored twice;
                 kept longer than the records themselves.
* ``commands``   ids of executed cloud commands (idempotence).
* ``frame_errors`` rejected device frames, kept for inspection.
* ``last_reading`` (v2) per device, the fingerprint of the last reading stored, so a device
                 repeating it after a restart is not stored again (:mod:`edge.store.repeats`);
                 ``sessions.subject_tag`` (v2): a keyed hash of the card holder's ID number,
                 so a card still on the reader after a restart continues its open session.
* ``sessions.age_days``, ``sessions.sex`` (v5): the patient's age on the day the session
  opened and sex, so readings after a restart are still judged for the person measured
  (never the birth date itself: that stays inside the encrypted subject).
* ``dead_letters`` records the cloud refused one by one (docs/protocol.md §3.1): a copy
                 of the record (it outlives the pruned ``records`` row), the cloud's reason,
                 and how staff dealt with it (resent as seq N, or dismissed). Schema v3.

Migrations are numbered; ``PRAGMA user_version`` holds the number applied last.

How to write a hub migration (``migrate()`` relies on every rule):

* Append one function ``_vN(db)`` to ``MIGRATIONS``; never change what a shipped one does, nor
  reorder them. ``db`` is a :class:`Step` over the hub's connection (plain SQL: the hub does
  not import a schema library, which would stay in its memory for as long as it runs).
* ``migrate()`` runs each step inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` together with the
  ``PRAGMA user_version = N`` bump, so a power cut inside a step leaves the database at
  version N-1 exactly as it was, and the next start runs the step again from the top.
* A step may run as many statements as it needs, but only through ``db.execute(...)`` and
  ``db.executescript(...)`` (which splits the script and runs it inside the open
  transaction). Never call ``db.conn.executescript()`` (Python's sqlite3 commits before it
  runs),
  ``conn.commit()``, ``with conn:``, ``BEGIN``/``COMMIT``/``VACUUM`` or
  ``PRAGMA journal_mode``: each would end the transaction half-way. ``migrate()`` notices a
  step that ended the transaction and refuses to go on (``StoreError``).
* Data copies belong in the same step as the DDL they need (``INSERT ... SELECT``).
* tests/edge/test_migrations.py kills a process before every statement of every
  migration in ``MIGRATIONS`` and checks the reopened database reaches the latest version
  with the same schema as a fresh one: a new step is covered without touching the test.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import StoreError
from edge.store import repeats

log = logging.getLogger("edge.store")


class Step:
    """What a migration step gets: statements run inside the step's open transaction."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        """Run one statement."""
        return self.conn.execute(sql, params)

    def executescript(self, script: str) -> None:
        """Run each statement of ``script`` in turn (unlike ``sqlite3.Connection.executescript``,
        which commits first)."""
        statement = ""
        for part in script.split(";"):
            statement += part + ";"
            if sqlite3.complete_statement(statement):
                if statement.strip(" \t\n;"):
                    self.conn.execute(statement)
                statement = ""
        if statement.strip(" \t\n;"):
            raise StoreError(f"incomplete statement at the end of a migration script: {statement[:80]!r}")


def _v1(db: Step) -> None:
    # the statements sqlite_utils generated when this step shipped, verbatim: an existing hub.db and a new one
    # hold the same schema text
    db.executescript('''
CREATE TABLE "sync_state" (
   "id" INTEGER PRIMARY KEY,
   "hub_id" TEXT,
   "epoch" INTEGER NOT NULL,
   "next_seq" INTEGER NOT NULL,
   "acked_through" INTEGER NOT NULL,
   "last_ack" BLOB,
   "last_ack_ms" INTEGER,
   "last_error" TEXT,
   "last_error_ms" INTEGER,
   "created_ms" INTEGER
);
CREATE TABLE "records" (
   "seq" INTEGER PRIMARY KEY,
   "type" INTEGER NOT NULL,
   "at" INTEGER NOT NULL,
   "station_id" TEXT,
   "device_id" TEXT,
   "session_id" TEXT,
   "enc" INTEGER DEFAULT 0,
   "body" BLOB NOT NULL
);
CREATE TABLE seen (key TEXT PRIMARY KEY, seq INTEGER NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX "idx_records_at"
    ON "records" ("at");
CREATE TABLE "sessions" (
   "session_id" TEXT PRIMARY KEY,
   "station_id" TEXT,
   "opened_at" INTEGER,
   "last_at" INTEGER,
   "closed_at" INTEGER,
   "close_reason" TEXT,
   "source" TEXT,
   "pregnant_weeks" INTEGER,
   "height_cm" REAL,
   "weight_kg" REAL,
   "subject_id" INTEGER
);
CREATE INDEX "idx_sessions_opened_at"
    ON "sessions" ("opened_at");
CREATE TABLE "subjects" (
   "id" INTEGER PRIMARY KEY,
   "id_masked" TEXT,
   "name_masked" TEXT,
   "sex" TEXT,
   "sealed" BLOB
);
CREATE TABLE "audit" (
   "id" INTEGER PRIMARY KEY,
   "at" INTEGER,
   "kind" TEXT,
   "actor" TEXT,
   "detail" TEXT
);
CREATE TABLE "commands" (
   "id" TEXT PRIMARY KEY,
   "name" TEXT,
   "at" INTEGER,
   "ok" INTEGER,
   "detail" TEXT
);
CREATE TABLE "frame_errors" (
   "id" INTEGER PRIMARY KEY,
   "at" INTEGER,
   "device_id" TEXT,
   "reason" TEXT,
   "message" TEXT,
   "raw" BLOB
);
''')


def _v2(db: Step) -> None:
    """The repeat filter (:mod:`edge.store.repeats`) and the card tag that lets a re-read card continue its visit."""
    db.execute("CREATE TABLE last_reading (device_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, taken_by INTEGER, "
               "seq INTEGER NOT NULL, at INTEGER NOT NULL) WITHOUT ROWID")
    db.execute("ALTER TABLE sessions ADD COLUMN subject_tag TEXT")


def _v3_dead_letters(db: Step) -> None:
    """Records the cloud refused one by one (edge.store.deadletters); idempotent."""
    db.execute("CREATE TABLE IF NOT EXISTS dead_letters (seq INTEGER PRIMARY KEY, type INTEGER NOT NULL, "
               "at INTEGER NOT NULL, station_id TEXT, device_id TEXT, enc INTEGER NOT NULL DEFAULT 0, "
               "body BLOB NOT NULL, reason TEXT NOT NULL, refused_at INTEGER NOT NULL, resolved_at INTEGER, "
               "resolved_by TEXT, resent_seq INTEGER)")


def _v5(db: Step) -> None:
    """Who is being measured, for the clinical interpretation of readings after a restart."""
    db.execute("ALTER TABLE sessions ADD COLUMN age_days INTEGER")
    db.execute("ALTER TABLE sessions ADD COLUMN sex TEXT")


def resend_key(text: str) -> int:
    """A device-resend key (device, device time, frame digest; :func:`edge.store.ledger.dedup_key`) as the
    signed 64-bit integer ``seen`` stores since v6. Two different keys collide with odds of about n²/2⁶⁵
    for n keys kept (10⁻⁸ for a million)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _v6_compact(db: Step) -> None:
    """Smaller rows (issue 21): reading bodies in the stored form of :mod:`edge.store.bodies`, resend
    keys as integers, and no second encrypted copy of each subject (the session's record has it)."""
    from edge.store.bodies import compact

    last = -1
    while rows := db.execute("SELECT seq, body FROM records WHERE type = 0 AND seq > ? ORDER BY seq LIMIT 2000",
                             (last,)).fetchall():
        for seq, body in rows:
            small = compact(body)
            if small != body:
                db.execute("UPDATE records SET body = ? WHERE seq = ?", (small, seq))
        last = rows[-1][0]
    db.execute("CREATE TABLE seen_v6 (key INTEGER PRIMARY KEY, seq INTEGER NOT NULL, at INTEGER NOT NULL)")
    after = ""
    while rows := db.execute("SELECT key, seq, at FROM seen WHERE key > ? ORDER BY key LIMIT 2000",
                             (after,)).fetchall():
        for key, seq, at in rows:
            db.execute("INSERT OR IGNORE INTO seen_v6 (key, seq, at) VALUES (?, ?, ?)", (resend_key(key), seq, at))
        after = rows[-1][0]
    db.execute("DROP TABLE seen")
    db.execute("ALTER TABLE seen_v6 RENAME TO seen")
    db.execute("ALTER TABLE subjects DROP COLUMN sealed")


def _drop_time_index(db: Step) -> None:
    """No index on ``records.at`` (issue 21: 14-18 B of every reading): records are appended in time order,
    so the seq order is the time order and :func:`edge.store.seqtime.first_seq_since` finds a time by
    bisecting seqs."""
    db.execute("DROP INDEX IF EXISTS idx_records_at")


MIGRATIONS = [_v1, _v2, _v3_dead_letters, _v5, _v6_compact,  # merge: v4 (config state) goes before _v5
              _drop_time_index]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this database has not seen; returns the schema version.

    Each step runs in its own ``BEGIN IMMEDIATE`` transaction with its ``user_version``
    bump, so it is applied whole or not at all (see the module docstring).
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= len(MIGRATIONS):
        return int(version)
    db = Step(conn)
    for number, step in enumerate(MIGRATIONS, start=1):
        if number <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # re-read under the write lock: another process may have applied it meanwhile
            if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                conn.execute("COMMIT")
                continue
            step(db)
            if not conn.in_transaction:
                raise StoreError(
                    f"hub.db migration {number} ({step.__name__}) ended its transaction on its own "
                    "(executescript, commit or BEGIN inside the step): fix the step as the rules at "
                    "the top of edge/store/schema.py say")
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("hub.db schema migrated to version %d", number)
    return len(MIGRATIONS)


#: page cache of each connection, KiB. SQLite's default (2,000 KiB) filled over the first hour of a
#: hub and read as a leak; the hub's queries walk the right edge of the tables and their indexes, which
#: this holds (bench/bench_hub_store.py measures the same durable rate with it)
CACHE_KIB = 512


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    """A connection with the hub's pragmas: WAL, synchronous=FULL, busy timeout, a small page cache."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None)
    else:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
    if not readonly:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on a new file (else see _vacuum_mode)
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def _vacuum_mode(conn: sqlite3.Connection, path: Path) -> None:
    """Switch a hub.db made before v6 to incremental auto-vacuum (one full VACUUM, which also hands the
    space the v6 migration freed back to the file system). Pruning then returns freed pages as it goes
    (:func:`edge.store.reader.prune_seen`). A failure (disk too full for the copy) is tried again at the
    next start."""
    if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
        conn.executescript("PRAGMA incremental_vacuum;")  # pages a migration freed (stepped to its end)
        return
    size = path.stat().st_size
    log.info("hub.db: switching to incremental vacuum (one VACUUM of %d MB)", size >> 20)
    try:
        conn.execute("VACUUM")
    except sqlite3.OperationalError as exc:
        log.warning("hub.db VACUUM failed (%s); pruned space stays inside the file until it succeeds", exc)


def mint_epoch() -> int:
    """A random non-zero epoch (63 bits, so it fits SQLite's signed INTEGER)."""
    return int.from_bytes(os.urandom(8), "big") >> 1 or 1


@dataclass(frozen=True)
class Quarantine:
    """What happened when a damaged database was set aside."""

    moved_to: Path
    old_epoch: int | None
    lost_from: int | None  #: first seq that may never have reached the cloud
    lost_to: int | None
    problem: str

    def describe(self) -> str:
        """One technician-readable line."""
        lost = (f"seqs {self.lost_from}..{self.lost_to} of epoch {self.old_epoch} were not acknowledged by the cloud"
                if self.lost_from is not None and self.lost_to is not None and self.lost_from <= self.lost_to
                else "the range of unsynced records could not be read")
        return (f"hub.db was damaged ({self.problem}); it was moved to {self.moved_to} and a new epoch started; "
                f"{lost}. Recover what is readable with `mchub edge export --from-db {self.moved_to} --out FILE` "
                "and import FILE in the cloud.")


def _check(path: Path) -> str | None:
    """None when the database passes PRAGMA quick_check, else the problem.

    Read-only: a read-write connection folds the write-ahead log into hub.db when it closes. After
    a power cut on a nearly full disk that fold ran out of room part-way, left hub.db grown by what
    it had written, and the hub then had no room left to open its own database ("database or disk
    is full" at start, so it could not even sync what it held). Read-only it checks and leaves the
    log as it is; the hub's own connection reads it, and a full disk then meets the writer, which
    holds input loudly (docs/reliability.md)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)
    if rows != [("ok",)]:
        return "; ".join(str(r[0]) for r in rows[:3])
    return None


def _salvage_range(path: Path) -> tuple[int | None, int | None, int | None]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            epoch, nxt, acked = conn.execute("SELECT epoch, next_seq, acked_through FROM sync_state").fetchone()
        finally:
            conn.close()
        return int(epoch), int(acked) + 1, int(nxt) - 1
    except Exception:
        return None, None, None


def _salvage_seen(damaged: Path, conn: sqlite3.Connection) -> int:
    """Carry the device-resend keys over from a quarantined database (as much as is readable).

    Without them, a device resending a reading whose acknowledgement was lost when the old
    database died would have it stored again in the new epoch — a duplicate in the cloud.
    Carried keys point at seq 0: "stored in an earlier epoch".
    """
    kept = 0
    try:
        old = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
        try:
            cur = old.execute("SELECT key, at FROM seen")
            while rows := cur.fetchmany(5000):
                keys = [(k if isinstance(k, int) else resend_key(k), at) for k, at in rows]  # text before v6
                with conn:
                    conn.executemany("INSERT OR IGNORE INTO seen (key, seq, at) VALUES (?, 0, ?)", keys)
                kept += len(rows)
        finally:
            old.close()
    except sqlite3.DatabaseError as exc:
        log.warning("device-resend keys only partly recovered from %s (%d kept): %s", damaged, kept, exc)
    return kept


def open_db(path: Path, hub_id: str, now_ms: int | None = None) -> tuple[sqlite3.Connection, Quarantine | None]:
    """Open (creating if needed) hub.db; a damaged file is quarantined and a new epoch minted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    quarantine = None
    if path.exists():
        problem = _check(path)
        if problem is not None:
            epoch, first, last = _salvage_range(path)
            target_dir = path.parent / "quarantine"
            target_dir.mkdir(exist_ok=True)
            target = target_dir / f"hub-{time.strftime('%Y%m%d-%H%M%S')}.db"
            for suffix in ("", "-wal", "-shm"):
                src = Path(str(path) + suffix)
                if src.exists():
                    os.replace(src, Path(str(target) + suffix))
            quarantine = Quarantine(target, epoch, first, last, problem)
            log.error("%s", quarantine.describe())
    try:
        conn = connect(path)
        migrate(conn)
        _vacuum_mode(conn, path)
        row = conn.execute("SELECT hub_id FROM sync_state WHERE id = 1").fetchone()
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        if row is None:
            conn.execute("INSERT INTO sync_state (id, hub_id, epoch, next_seq, acked_through, created_ms) "
                         "VALUES (1, ?, ?, 1, 0, ?)", (hub_id, mint_epoch(), now))
        elif row[0] != hub_id:
            raise StoreError(f"{path} belongs to hub {row[0]!r}, not {hub_id!r}: point data_dir at this hub's data")
        if quarantine is not None:
            kept = _salvage_seen(quarantine.moved_to, conn)
            last = repeats.salvage(quarantine.moved_to, conn)
            conn.execute("INSERT INTO audit (at, kind, actor, detail) VALUES (?, 'quarantine', 'hub', ?)",
                         (now, f"{quarantine.describe()} {kept} device-resend keys were carried over, "
                               f"and {last} last-reading fingerprints."))
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {exc}") from exc
    return conn, quarantine
