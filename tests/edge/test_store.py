"""The durable store: group commit, resend dedup, encryption at rest, quarantine, disk guard."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from edge import identity
from edge.sessions import SessionManager
from edge.store.ledger import BindIn, IdentifyIn, InputRejected, Ledger, ReadingIn
from edge.store.reader import Reader, prune_chunk
from edge.store.schema import open_db
from edge.store.writer import DiskGuard, GroupWriter
from protocol.model import Reading, SessionOpened, Subject
from tests.edge.hubkit import bp
from tests.support.refcloud import RefCloud
from tests.support.waiting import HANG_S, until

NID = "11010519491231002X"


def make(tmp_path: Path, usage=None) -> tuple[GroupWriter, Reader, identity.Identity]:  # type: ignore[no-untyped-def]
    cloud = RefCloud(tmp_path / "c.db")
    ident = identity.init(tmp_path / "id", "hub-1", cloud.write_key_file(tmp_path / "cloud.json"))
    conn, _ = open_db(tmp_path / "hub.db", "hub-1")
    guard = DiskGuard(tmp_path, 0, usage) if usage is None else DiskGuard(tmp_path, 100, usage)
    writer = GroupWriter(Ledger(conn, SessionManager({}), ident.encrypt), guard)
    return writer, Reader(tmp_path / "hub.db", ident.decrypt), ident


async def test_group_commit_gives_consecutive_seqs_and_one_commit(tmp_path: Path) -> None:
    writer, reader, _ = make(tmp_path)
    writer.start()
    await writer.submit(ReadingIn("room-1", "d", bp(0)))  # first commit
    seqs = await asyncio.gather(*(writer.submit(ReadingIn("room-1", "d", bp(n))) for n in range(1, 501)))
    await writer.stop()
    assert list(seqs) == list(range(2, 502))
    assert writer.commits < 100  # 500 readings shared far fewer fsyncs
    records = reader.records(1, 1000)
    assert [r.seq for r in records] == list(range(1, 502)) and all(isinstance(r, Reading) for r in records)
    assert reader.state()["next_seq"] == 502


async def test_a_resent_device_record_is_stored_once(tmp_path: Path) -> None:
    writer, reader, _ = make(tmp_path)
    writer.start()
    first = await writer.submit(ReadingIn("room-1", "d", bp(7)))
    again = await asyncio.gather(*(writer.submit(ReadingIn("room-1", "d", bp(7))) for _ in range(3)))
    clockless = await writer.submit(ReadingIn("room-1", "d", bp(7, device_time=False)))
    await writer.stop()
    assert list(again) == [first] * 3 and clockless == first + 1  # no device clock: never deduplicated
    assert len(reader.records(1, 10)) == 2


async def test_id_numbers_are_encrypted_at_rest_and_masked_for_screens(tmp_path: Path) -> None:
    writer, reader, _ = make(tmp_path)
    writer.start()
    session = await writer.submit(IdentifyIn("room-1", Subject(national_id=NID, name="张三丰")))
    uid = reader.unbound()  # nothing yet
    await writer.submit(ReadingIn("room-2", "d", bp(1)))
    [unbound] = reader.unbound()
    await writer.submit(BindIn(unbound["uid"], session, "nurse-wang"))
    with pytest.raises(InputRejected):
        await writer.submit(BindIn(unbound["uid"], session, "nurse-wang"))  # already bound
    await writer.stop()
    assert uid == [] and reader.unbound() == []
    raw = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("hub.db*")))  # noqa: ASYNC240
    assert NID.encode() not in raw and "张三丰".encode() not in raw
    [s] = reader.sessions_since(0)
    assert s["id_masked"] == "1101**********002X" and s["name_masked"] == "张**" and s["readings"] == 1
    opened = reader.records(1, 1)[0]
    assert isinstance(opened, SessionOpened) and opened.subject.national_id == NID  # decrypted for the batch
    assert any(a["kind"] == "bind" and a["actor"] == "nurse-wang" for a in reader.audit())


async def test_disk_nearly_full_holds_readings_until_space_returns(tmp_path: Path) -> None:
    free = [10]  # bytes: below the 100-byte minimum
    writer, _reader, _ = make(tmp_path, usage=lambda _p: free[0])
    writer.guard.check(force=True)
    writer.start()
    pending = asyncio.ensure_future(writer.submit(ReadingIn("room-1", "d", bp(1))))
    await until(lambda: writer.held, "the writer holding readings")
    assert not pending.done()  # back-pressure, not a drop
    assert await writer.call(lambda c: 42) == 42  # acks and pruning still run
    free[0] = 10_000
    assert await asyncio.wait_for(pending, HANG_S) == 1
    await writer.stop()


def test_damaged_database_is_quarantined_with_a_new_epoch_and_the_lost_range_reported(tmp_path: Path) -> None:
    conn, q = open_db(tmp_path / "hub.db", "hub-1")
    assert q is None
    conn.execute("UPDATE sync_state SET next_seq = 11, acked_through = 4")
    old_epoch = conn.execute("SELECT epoch FROM sync_state").fetchone()[0]
    keep = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sync_state'").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray((tmp_path / "hub.db").read_bytes())
    for page in range(2, len(data) // size + 1):  # scribble over every b-tree page header but one
        if page != keep:
            data[(page - 1) * size:(page - 1) * size + 8] = b"\x0d\xff\xff\xff\xff\xff\xff\xff"
    (tmp_path / "hub.db").write_bytes(bytes(data))
    conn, q = open_db(tmp_path / "hub.db", "hub-1")
    assert q is not None and q.moved_to.exists()
    assert "seqs 5..10" in q.describe() and str(old_epoch) in q.describe()
    new_epoch, nxt = conn.execute("SELECT epoch, next_seq FROM sync_state").fetchone()
    assert new_epoch != old_epoch and nxt == 1
    assert conn.execute("SELECT kind FROM audit").fetchone()[0] == "quarantine"


async def test_a_resend_after_a_quarantine_is_not_stored_again_in_the_new_epoch(tmp_path: Path) -> None:
    """The device never got the ack for reading 7 when the old database died; it resends it."""
    writer, _, ident = make(tmp_path)
    writer.start()
    for n in range(1, 8):
        await writer.submit(ReadingIn("room-1", "d", bp(n)))
    await writer.stop()
    conn = writer.ledger.conn
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sessions'").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = bytearray((tmp_path / "hub.db").read_bytes())  # damage the sessions table; `seen` stays readable
    data[(root - 1) * size:(root - 1) * size + 8] = b"\x0d" + b"\xff" * 7
    (tmp_path / "hub.db").write_bytes(bytes(data))
    conn, quarantine = open_db(tmp_path / "hub.db", "hub-1")
    assert quarantine is not None
    writer = GroupWriter(Ledger(conn, SessionManager({}), ident.encrypt), DiskGuard(tmp_path, 0))
    writer.start()
    try:
        assert await writer.submit(ReadingIn("room-1", "d", bp(7))) == 0  # known: stored in an earlier epoch
        assert await writer.submit(ReadingIn("room-1", "d", bp(8))) == 1  # new readings start the new epoch
    finally:
        await writer.stop()
    detail = writer.ledger.conn.execute("SELECT detail FROM audit").fetchone()[0]
    assert "device-resend keys were carried over" in detail


def test_database_of_another_hub_is_refused(tmp_path: Path) -> None:
    open_db(tmp_path / "hub.db", "hub-1")[0].close()
    with pytest.raises(Exception, match="belongs to hub 'hub-1'"):
        open_db(tmp_path / "hub.db", "hub-2")
    assert sqlite3.connect(tmp_path / "hub.db").execute("PRAGMA user_version").fetchone()[0] >= 1


async def test_pages_freed_by_pruning_count_as_free_space(tmp_path: Path) -> None:
    writer, _reader, _ = make(tmp_path, usage=lambda _p: 10)  # the file system itself is full
    writer.guard.min_free = 0
    writer.start()
    await asyncio.gather(*(writer.submit(ReadingIn("room-1", "d", bp(n))) for n in range(1, 2001)))
    writer.guard.min_free = 8192
    assert not writer.guard.check(force=True)
    await writer.call(lambda c: c.execute("UPDATE sync_state SET acked_through = 2000"))
    await writer.call(prune_chunk(before_ms=2**62, limit=5000))
    assert writer.guard.check(force=True)  # SQLite reuses the freed pages before growing the file
    await writer.stop()


async def test_the_patient_context_survives_a_restart(tmp_path: Path) -> None:
    """A child's session reopened from hub.db after a restart is still judged as a child's."""
    from protocol import codes
    from tests.edge.test_sessions import child_id

    writer, _, ident = make(tmp_path)
    writer.start()
    await writer.submit(IdentifyIn("room-1", Subject(national_id=child_id("20230301", 1), name="小明")))
    await writer.stop()
    conn, _ = open_db(tmp_path / "hub.db", "hub-1")
    sessions = SessionManager({"room-1": 10 ** 12})
    Ledger(conn, sessions, ident.encrypt)  # what a restarted hub does: load the open sessions
    s = sessions.open["room-1"]
    assert s.sex == "M" and s.age_days is not None and 365 < s.age_days < 5 * 366
    [r] = sessions.reading("room-1", "bp-1", bp(1), now=s.last_at + 1)
    assert {o.code: o.flag for o in r.observations}[codes.SYSTOLIC] is None  # type: ignore[union-attr]


async def test_closing_the_reader_waits_for_a_read_still_running_in_its_thread(tmp_path: Path) -> None:
    # the hub's stop cancels tasks whose reads go on in to_thread's threads; closing the connection under such a
    # read crashed the process once (SIGSEGV in sqlite3, a CI run). A slow read is under way when close is called.
    writer, reader, _ = make(tmp_path)
    slow = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) "
            "SELECT count(*) FROM c")
    order: list[str] = []

    def read() -> list[tuple[int, ...]]:
        rows = reader._all(slow)
        order.append("read")
        return rows

    def close() -> None:
        reader.close()
        order.append("closed")

    reading = asyncio.create_task(asyncio.to_thread(read))
    await until(reader._lock.locked, "the slow read under way")
    await asyncio.to_thread(close)
    assert await reading == [(2_000_000,)]
    assert order == ["read", "closed"]  # the close waited for the read (before: it went on under it)
    with pytest.raises(sqlite3.ProgrammingError):  # a read after the close is an error, not a crash
        reader.state()
    await writer.stop()
