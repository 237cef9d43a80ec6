"""hub.db stays small (issue 21): the stored form of readings, the v6 conversion of an older file, pruning.

The stored form must give back exactly the reading that was stored (property test over
the protocol's record strategies); a hub.db written before v6 (map-form bodies, text
resend keys, a second sealed copy of each subject) converts on the next start and still
recognises a device resending a record it stored before; pruning forgets old sessions and
hands the freed pages back to the file system.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.sessions import SessionManager
from edge.store import schema, seqtime
from edge.store.bodies import decode_body, encode_body, is_compact, self_contained
from edge.store.ledger import IdentifyIn, Ledger, ReadingIn
from edge.store.reader import Reader, prune_chunk, prune_seen
from edge.store.schema import open_db
from edge.store.writer import DiskGuard, GroupWriter
from protocol.ids import reading_uid
from protocol.model import Reading, Record, Subject
from tests.edge.hubkit import bp
from tests.protocol.strategies import _readings, _record

OLD_VERSION = 4  #: the last schema before the compact rows
_old_encode = msgspec.msgpack.Encoder().encode  # how bodies were stored before v6


@given(_readings(1_765_000_000_000), st.booleans())
@settings(max_examples=300)
def test_a_stored_reading_decodes_to_exactly_the_reading_stored(reading: Reading, bound_later: bool) -> None:
    body = encode_body(reading)
    assert is_compact(body)
    column = reading.session_id or ("bound-by-staff" if bound_later else None)  # a later bind changes the column
    back = decode_body(body, reading.at, reading.station_id, reading.device_id, column)
    assert back == reading
    assert msgspec.msgpack.encode(back) == msgspec.msgpack.encode(reading)  # -0.0, 1e6 and friends bit for bit


@given(_record(1_765_000_000_000))
@settings(max_examples=300)
def test_a_visits_record_comes_back_from_its_row_and_stands_alone_in_the_dead_letter_list(record: Record) -> None:
    """Issue 21: a visit's records keep only what their row does not hold (a closing: 119 -> 38 B)."""
    if isinstance(record, Reading):
        return
    body = encode_body(record)
    station = getattr(record, "station_id", None)
    assert decode_body(body, record.at, station, None, record.session_id) == record
    whole = msgspec.msgpack.encode(record)
    assert self_contained(body, record.at, station, None, record.session_id) == whole  # a dead letter outlives its row
    assert decode_body(whole, record.at, station, None, record.session_id) == record  # written before: still read
    assert len(body) < len(whole) - 20


_device_times = (st.none() | st.text(max_size=24) | st.datetimes().map(lambda d: d.isoformat(timespec="seconds"))
                 | st.datetimes().map(lambda d: d.isoformat()) | st.datetimes().map(lambda d: d.isoformat(sep=" ")))


@given(_device_times)
@settings(max_examples=400)
def test_a_device_time_comes_back_exactly_and_the_usual_form_is_stored_as_a_number(device_time: str | None) -> None:
    m = bp(1)
    reading = Reading(at=1_765_000_000_000, device_id="bp-1", station_id="room-1", kind=m.kind,
                      observations=m.observations, device_time=device_time, raw=m.raw)
    body = encode_body(reading)
    assert decode_body(body, reading.at, "room-1", "bp-1") == reading
    usual = msgspec.structs.replace(reading, device_time="2026-11-22T09:30:00")  # what the drivers give
    assert len(encode_body(usual)) <= len(encode_body(msgspec.structs.replace(reading, device_time=None))) + 5


def test_a_height_weight_reading_is_stored_in_a_fraction_of_its_old_size() -> None:
    m = bp(12)
    reading = Reading(at=1_765_000_000_000, device_id="bp-1", station_id="room-1", kind=m.kind,
                      observations=m.observations, device_time=m.device_time, session_id="0193a1b2-c3d4-7e5f-8a9b",
                      raw=m.raw)
    assert len(encode_body(reading)) * 3 < len(_old_encode(reading))


def _old_hub_db(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bytes]]:
    """A hub.db as a hub before v6 left it: 300 readings (map bodies, text resend keys), a sealed subject."""
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:OLD_VERSION])
    conn = schema.connect(path)
    conn.execute("PRAGMA auto_vacuum = NONE")  # before v6 files had none
    schema.migrate(conn)
    conn.execute("INSERT INTO sync_state (id, hub_id, epoch, next_seq, acked_through, created_ms) "
                  "VALUES (1, 'hub-1', 7, 301, 0, 0)")
    rows = []
    for n in range(1, 301):
        m = bp(n)
        r = Reading(at=1_765_000_000_000 + n, device_id="d", station_id="room-1", kind=m.kind,
                    observations=m.observations, device_time=m.device_time, raw=m.raw,
                    session_id="s-1" if n % 2 else None)
        rows.append((n, _old_encode(r)))
        conn.execute("INSERT INTO records (seq, type, at, station_id, device_id, session_id, enc, body) "
                     "VALUES (?, 0, ?, 'room-1', 'd', ?, 0, ?)", (n, r.at, r.session_id, rows[-1][1]))
        key = f"d|{m.device_time}|{hashlib.blake2b(m.raw, digest_size=8).hexdigest()}"
        conn.execute("INSERT INTO seen (key, seq, at) VALUES (?, ?, ?)", (key, n, r.at))
    conn.execute("INSERT INTO subjects (id_masked, name_masked, sex, sealed) VALUES ('1101**', '张*', '1', ?)",
                 (b"x" * 300,))
    conn.close()
    monkeypatch.undo()
    return rows


async def test_an_older_hub_db_is_converted_and_still_knows_what_devices_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "hub.db"
    rows = _old_hub_db(db, monkeypatch)
    before = {seq: msgspec.msgpack.decode(body) for seq, body in rows}

    conn, quarantine = open_db(db, "hub-1")  # what the next start does
    assert quarantine is None
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(schema.MIGRATIONS)
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on
    assert all(is_compact(body) for (body,) in conn.execute("SELECT body FROM records"))
    assert "sealed" not in {r[1] for r in conn.execute("PRAGMA table_info(subjects)")}
    reader = Reader(db)
    for record in reader.records(1, 1000):
        expected = dict(before[record.seq], hub_id="hub-1", epoch=7, seq=record.seq)
        assert msgspec.msgpack.decode(_old_encode(msgspec.structs.replace(record, uid=""))) == expected

    writer = GroupWriter(Ledger(conn, SessionManager({}), lambda b, _aad: b), DiskGuard(tmp_path, 0))
    writer.start()
    again = await writer.submit(ReadingIn("room-1", "d", bp(123)))  # the device resends a record of the old file
    fresh = await writer.submit(ReadingIn("room-1", "d", bp(999)))
    await writer.stop()
    assert again == 123 and fresh == 301
    reader.close()
    conn.close()


async def test_pruning_forgets_old_sessions_and_returns_freed_pages_to_the_file_system(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    conn, _ = open_db(db, "hub-1")
    clock = [1_000]
    sessions = SessionManager({"room-1": 60_000}, monotonic=lambda: clock[0])
    writer = GroupWriter(Ledger(conn, sessions, lambda b, _aad: b, clock=lambda: clock[0]), DiskGuard(tmp_path, 0))
    writer.start()
    await writer.submit(IdentifyIn("room-1", Subject(name="张三", source="staff")))
    await asyncio.gather(*(writer.submit(ReadingIn("room-1", "d", bp(n))) for n in range(5000)))
    clock[0] += 3_600_000
    await writer.submit(IdentifyIn("room-1", Subject(name="李四", source="staff")))  # closes the first session
    await writer.call(lambda c: c.execute("UPDATE sync_state SET acked_through = next_seq - 1"))
    await writer.call(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    full = db.stat().st_size

    while await writer.call(prune_chunk(clock[0] + 1, 2000)) == 2000:
        pass
    await writer.call(prune_seen(clock[0] + 1, keep_free_pages=8))
    await writer.call(lambda c: c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall())
    left = sqlite3.connect(db)
    try:
        kept = left.execute("SELECT count(*) FROM sessions").fetchone()[0]
        subjects = left.execute("SELECT count(*) FROM subjects").fetchone()[0]
        free = left.execute("PRAGMA freelist_count").fetchone()[0]
    finally:
        left.close()
    await writer.stop()
    conn.close()
    assert (kept, subjects) == (1, 1)  # the open session stays, the closed one's masked subject went with it
    assert free <= 8 and db.stat().st_size < full / 2


def test_records_since_a_time_are_found_by_seq_without_a_time_index(tmp_path: Path) -> None:
    conn, _ = open_db(tmp_path / "hub.db", "hub-1")
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'idx_records_at'").fetchone()[0] == 0
    assert seqtime.first_seq_since(conn, 0) == 1  # empty: the next seq
    times = [100, 100, 200, 300, 300, 300, 400, 50, 60, 500]  # the clock set back after seq 7
    for seq, at in enumerate(times, start=10):  # seqs 1..9 already pruned
        conn.execute("INSERT INTO records (seq, type, at, body) VALUES (?, 0, ?, x'90')", (seq, at))
    first = {at: seqtime.first_seq_since(conn, at) for at in (0, 100, 101, 300, 400, 450, 501)}
    assert first[0] == 10 and first[100] == 10 and first[101] == 12 and first[501] == 20
    for at in (0, 100, 101, 300):  # here the bisection stays before the step back: exact
        assert all(t < at for t in times[:first[at] - 10]) and all(t >= at for t in times[first[at] - 10:7])
    assert first[400] <= 19 and first[450] <= 19  # it may miss 400 (seq 16), never what followed the step (500)
    conn.close()


def test_a_reading_stored_after_the_clock_was_set_back_is_still_found_by_its_uid(tmp_path: Path) -> None:
    conn, _ = open_db(tmp_path / "hub.db", "hub-1")
    for seq, at in enumerate([1_765_000_000_000, 1_765_000_100_000, 1_764_999_000_000, 1_765_000_200_000], start=1):
        conn.execute("INSERT INTO records (seq, type, at, body) VALUES (?, 0, ?, x'90')", (seq, at))
    conn.execute("UPDATE sync_state SET next_seq = 5")
    ledger = Ledger(conn, SessionManager({}), lambda b, _aad: b)
    for seq, at in ((2, 1_765_000_100_000), (3, 1_764_999_000_000)):  # in time order, and out of it
        assert ledger.find_reading(reading_uid(ledger.hub_id, ledger.epoch, seq, at)) == (seq, None)
    conn.close()


def test_finding_a_time_is_not_upset_by_pruning_between_its_lookups(tmp_path: Path) -> None:
    # the bisection's lookups share one snapshot: sync pruning every record between two of them (another
    # connection, as in the hub) made a lookup find nothing, and the kiosk task failed with a TypeError
    db = tmp_path / "hub.db"
    conn, _ = open_db(db, "hub-1")
    for seq in range(1, 101):
        conn.execute("INSERT INTO records (seq, type, at, body) VALUES (?, 0, ?, x'90')", (seq, 1000 + seq))
    reader = schema.connect(db, readonly=True)
    pruned: list[int] = []

    def prune_once(statement: str) -> None:
        if statement.startswith("SELECT seq, at FROM records") and not pruned:
            pruned.append(conn.execute("DELETE FROM records").rowcount)

    reader.set_trace_callback(prune_once)
    try:
        assert seqtime.first_seq_since(reader, 1050) == 50  # what the snapshot held
        assert pruned == [100] and not reader.in_transaction
    finally:
        reader.close()
        conn.close()
