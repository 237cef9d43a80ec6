"""The persistent "last reading seen per device" filter (hub schema v2, table ``last_reading``).

Devices that keep showing their last result — a station answering every poll with the
person on the platform, a BP monitor repeating its last measurement, a Modbus station
whose registers stay on show until acknowledged, a BLE device resending stored records —
report it again after every hub restart, config reload or power cut. A driver cannot
tell such a repeat from a new reading when it has just started (its memory is gone), so
it marks the measurement ``repeats=True`` (:class:`drivers.base.Measurement`) and the
hub decides here, inside the same SQLite transaction that stores readings:

* every stored reading updates its device's row: a content :func:`fingerprint` (kind,
  observation codes, values and units, device time, status, user slot and the driver's
  frame-derived ``identity``), the latest time the device says it took it
  (``taken_by``: now minus ``age_s``) and its seq;
* a ``repeats`` reading whose fingerprint equals its device's row, and whose ``taken_by``
  (when both are known) is within :data:`SAME_MEASUREMENT_MS`, is the same reading: it is
  not stored again and the driver gets the stored seq back (so it acknowledges it);
* a ``repeats`` reading of a device without a row (a new hub, or a database quarantined
  beyond salvage) and without an age cannot be placed in time: it is stored unbound
  (:data:`UNKNOWN_TIME`), never attached to whoever is at the station now.

Rows are salvaged from a quarantined database together with the ``seen`` keys
(:func:`salvage`), so a fresh database after quarantine still recognises a repeat.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import msgspec

from drivers.base import Measurement

log = logging.getLogger("edge.store")

#: two reports of one measurement whose "taken by" times differ by at most this much are the
#: same measurement (the Accutorr counts whole minutes, plus a poll's delay)
SAME_MEASUREMENT_MS = 90_000
#: ``taken_by`` of a reading that may have been taken at any time before: binds to no session
UNKNOWN_TIME = 0
#: an age beyond a year counts as a year (keeps the arithmetic inside SQLite's integers)
MAX_AGE_S = 366 * 86_400

_encode = msgspec.msgpack.Encoder().encode


@dataclass(frozen=True, slots=True)
class Last:
    """The last reading stored from one device."""

    fingerprint: str
    taken_by: int | None
    seq: int  #: 0 when carried over from a quarantined database


def fingerprint(m: Measurement) -> str:
    """What the device reported, independent of when it was reported (hex, 128 bits)."""
    doc = (m.kind, [(o.code, o.value, o.unit) for o in m.observations], m.device_time, list(m.status),
           m.user_id, m.identity)
    return hashlib.blake2b(_encode(doc), digest_size=16).hexdigest()


def taken_by(m: Measurement, now: int) -> int | None:
    """The latest time (ms) the measurement can have been taken, when the device says."""
    return None if m.age_s is None else now - min(max(0, m.age_s), MAX_AGE_S) * 1000


def same(last: Last, fp: str, when: int | None) -> bool:
    """True when a repeat with fingerprint ``fp`` taken by ``when`` is the reading ``last``."""
    if fp != last.fingerprint:
        return False
    return when is None or last.taken_by is None or abs(when - last.taken_by) <= SAME_MEASUREMENT_MS


def load(conn: sqlite3.Connection, device_ids: set[str]) -> dict[str, Last]:
    """The rows of these devices."""
    found: dict[str, Last] = {}
    for device, fp, when, seq in conn.execute(  # one statement whatever the number of devices (its cache)
            "SELECT device_id, fingerprint, taken_by, seq FROM last_reading "
            "WHERE device_id IN (SELECT value FROM json_each(?))", (json.dumps(sorted(device_ids)),)):
        found[device] = Last(fp, when, seq)
    return found


def save(conn: sqlite3.Connection, rows: dict[str, Last], now: int) -> None:
    """Upsert the rows (inside the caller's transaction)."""
    conn.executemany(
        "INSERT INTO last_reading (device_id, fingerprint, taken_by, seq, at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (device_id) DO UPDATE SET fingerprint = excluded.fingerprint, taken_by = excluded.taken_by, "
        "seq = excluded.seq, at = excluded.at",
        [(d, r.fingerprint, r.taken_by, r.seq, now) for d, r in rows.items()])


def salvage(damaged: Path, conn: sqlite3.Connection) -> int:
    """Carry the rows over from a quarantined database (as much as is readable); seq becomes 0."""
    kept = 0
    try:
        old = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
        try:
            rows = old.execute("SELECT device_id, fingerprint, taken_by, at FROM last_reading").fetchall()
        finally:
            old.close()
        with conn:
            conn.executemany("INSERT OR IGNORE INTO last_reading (device_id, fingerprint, taken_by, seq, at) "
                             "VALUES (?, ?, ?, 0, ?)", rows)
        kept = len(rows)
    except sqlite3.DatabaseError as exc:
        log.warning("last-reading filter not recovered from %s: %s; a device repeating its last reading "
                    "is stored once more, unbound", damaged, exc)
    return kept
