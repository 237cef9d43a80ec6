"""The persistent last-reading filter and the binding rule (issue 17, finding 1), on the real store.

Each "restart" closes the database and builds a new ledger and session manager on it,
exactly what a new hub process does; the drivers' in-memory filters are gone then.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import msgspec

from drivers.base import Measurement
from edge import identity
from edge.sessions import SessionManager
from edge.store import repeats
from edge.store.ledger import IdentifyIn, Ledger, ReadingIn
from edge.store.schema import open_db
from edge.store.writer import DiskGuard, GroupWriter
from protocol import codes
from protocol.model import Observation, Subject
from tests.support.refcloud import RefCloud

ANNA = Subject(national_id="11010519491231002X", name="李娜", sex="2")
BO = Subject(national_id="110105194912310029", name="王波", sex="1")
MIN = 60_000


def bp(sys_: float, dia: float, *, repeats: bool = False, age_s: int | None = None, identity: str = "") -> Measurement:
    return Measurement(kind="blood_pressure", raw=b"P:%d,%d" % (sys_, dia), repeats=repeats, age_s=age_s,
                       identity=identity,
                       observations=(Observation(code=codes.SYSTOLIC, value=sys_, unit="mm[Hg]"),
                                     Observation(code=codes.DIASTOLIC, value=dia, unit="mm[Hg]")))


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


class Store:
    """hub.db with a writer that can be 'restarted' (closed and opened again, memory gone)."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "hub.db"
        self.tmp = tmp_path
        self.clock = Clock()
        cloud = RefCloud(tmp_path / "c.db")
        self.ident = identity.init(tmp_path / "id", "hub-1", cloud.write_key_file(tmp_path / "cloud.json"))
        self.writer: GroupWriter | None = None

    async def start(self) -> GroupWriter:
        conn, _ = open_db(self.path, "hub-1")
        ledger = Ledger(conn, SessionManager({"room-1": 30 * MIN}), self.ident.encrypt, self.clock,
                        self.ident.subject_tag)
        self.writer = GroupWriter(ledger, DiskGuard(self.tmp, 0))
        self.writer.start()
        return self.writer

    async def restart(self) -> GroupWriter:
        await self.stop()
        return await self.start()

    async def stop(self) -> None:
        if self.writer is not None:
            await self.writer.stop()
            self.writer.ledger.conn.close()
            self.writer = None

    def readings(self) -> list[tuple[int, str | None]]:
        conn = sqlite3.connect(self.path)
        try:
            return conn.execute("SELECT seq, session_id FROM records WHERE type = 0 ORDER BY seq").fetchall()
        finally:
            conn.close()

    def sessions(self) -> list[str]:
        conn = sqlite3.connect(self.path)
        try:
            return [r[0] for r in conn.execute("SELECT session_id FROM sessions ORDER BY opened_at")]
        finally:
            conn.close()


def test_fingerprint_is_what_the_device_reported_not_when() -> None:
    assert repeats.fingerprint(bp(120, 80, age_s=0)) == repeats.fingerprint(bp(120, 80, age_s=600, repeats=True))
    assert repeats.fingerprint(bp(120, 80)) != repeats.fingerprint(bp(120, 81))
    assert repeats.fingerprint(bp(120, 80, identity="seq=7")) != repeats.fingerprint(bp(120, 80, identity="seq=8"))
    dated = msgspec.structs.replace(bp(120, 80), device_time="2026-12-06T09:41:00")
    assert repeats.fingerprint(dated) != repeats.fingerprint(bp(120, 80))


async def test_a_reading_shown_again_after_a_restart_is_not_stored_again(tmp_path: Path) -> None:
    store = Store(tmp_path)
    w = await store.start()
    first = await w.submit(ReadingIn("room-1", "bp-1", bp(120, 80)))
    for _ in range(3):  # restart, SIGHUP, power cut: a new driver reports what is still on show
        w = await store.restart()
        assert await w.submit(ReadingIn("room-1", "bp-1", bp(120, 80, repeats=True))) == first
    # the driver knows it is new (the platform was empty in between): equal values are stored
    second = await w.submit(ReadingIn("room-1", "bp-1", bp(120, 80)))
    # a different reading on show after a restart is new
    w = await store.restart()
    third = await w.submit(ReadingIn("room-1", "bp-1", bp(118, 79, repeats=True)))
    # another device showing the same values is another reading
    other = await w.submit(ReadingIn("room-1", "bp-2", bp(118, 79, repeats=True)))
    await store.stop()
    assert [s for s, _ in store.readings()] == [first, second, third, other]
    assert len({first, second, third, other}) == 4


async def test_the_filter_row_is_written_with_the_reading_or_not_at_all(tmp_path: Path) -> None:
    """One transaction: a group that rolls back leaves the filter as it was."""
    store = Store(tmp_path)
    w = await store.start()
    await w.submit(ReadingIn("room-1", "bp-1", bp(120, 80)))
    conn = w.ledger.conn
    before = conn.execute("SELECT fingerprint, seq FROM last_reading").fetchall()
    conn.execute("BEGIN IMMEDIATE")  # a group that fails half-way
    repeats.save(conn, {"bp-1": repeats.Last("x", None, 99)}, 0)
    conn.execute("ROLLBACK")
    assert conn.execute("SELECT fingerprint, seq FROM last_reading").fetchall() == before
    await store.stop()


async def test_the_monitor_age_tells_the_same_measurement_from_a_new_equal_one(tmp_path: Path) -> None:
    store = Store(tmp_path)
    w = await store.start()
    first = await w.submit(ReadingIn("room-1", "bp-1", bp(120, 80, age_s=0)))
    store.clock.now += 3 * MIN
    w = await store.restart()  # the monitor now says "3 minutes ago": the same measurement
    assert await w.submit(ReadingIn("room-1", "bp-1", bp(120, 80, repeats=True, age_s=180))) == first
    store.clock.now += 5 * MIN
    w = await store.restart()  # "0 minutes ago" with equal values: measured again while the hub was down
    again = await w.submit(ReadingIn("room-1", "bp-1", bp(120, 80, repeats=True, age_s=0)))
    await store.stop()
    assert again == first + 1 and len(store.readings()) == 2


async def test_a_reading_taken_before_a_session_opened_never_binds_to_it(tmp_path: Path) -> None:
    """Anna's BP is still on the monitor when the hub restarts; Bo's card opens a session."""
    store = Store(tmp_path)
    w = await store.start()
    anna = await w.submit(IdentifyIn("room-1", ANNA))
    await w.submit(ReadingIn("room-1", "bp-1", bp(130, 85, age_s=0)))
    store.clock.now += 2 * MIN
    bo = await w.submit(IdentifyIn("room-1", BO))
    store.clock.now += 1 * MIN
    # Anna re-measured just before Bo came in (2 minutes ago), the hub restarts and polls
    w = await store.restart()
    await w.submit(ReadingIn("room-1", "bp-1", bp(131, 86, repeats=True, age_s=2 * 60)))
    # Bo's own measurement, taken now, binds to Bo
    await w.submit(ReadingIn("room-1", "bp-1", bp(118, 76, age_s=0)))
    await store.stop()
    assert [s for _, s in store.readings()] == [anna, None, bo]


async def test_a_device_the_hub_has_no_memory_of_never_binds_its_first_repeat(tmp_path: Path) -> None:
    """A fresh database (new hub, quarantine beyond salvage): what is on show may be anyone's."""
    store = Store(tmp_path)
    w = await store.start()
    bo = await w.submit(IdentifyIn("room-1", BO))
    await w.submit(ReadingIn("room-1", "scale-1", bp(120, 80, repeats=True)))  # on show since before
    await w.submit(ReadingIn("room-1", "scale-1", bp(121, 80)))  # the driver saw it change: Bo's
    await store.stop()
    assert [s for _, s in store.readings()] == [None, bo]


async def test_a_quarantined_database_hands_the_filter_to_the_new_one(tmp_path: Path) -> None:
    store = Store(tmp_path)
    w = await store.start()
    await w.submit(ReadingIn("room-1", "bp-1", bp(120, 80, age_s=0)))
    conn = w.ledger.conn
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sessions'").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    await store.stop()
    data = bytearray(store.path.read_bytes())  # damage the sessions table; last_reading stays readable
    data[(root - 1) * size:(root - 1) * size + 8] = b"\x0d" + b"\xff" * 7
    store.path.write_bytes(bytes(data))
    w = await store.start()
    assert await w.submit(ReadingIn("room-1", "bp-1", bp(120, 80, repeats=True, age_s=60))) == 0  # earlier epoch
    detail = w.ledger.conn.execute("SELECT detail FROM audit WHERE kind = 'quarantine'").fetchone()[0]
    await store.stop()
    assert store.readings() == [] and "1 last-reading fingerprints" in detail


async def test_a_card_still_on_the_reader_after_a_restart_continues_the_visit(tmp_path: Path) -> None:
    store = Store(tmp_path)
    w = await store.start()
    anna = await w.submit(IdentifyIn("room-1", ANNA))
    await w.submit(ReadingIn("room-1", "bp-1", bp(120, 80)))
    w = await store.restart()
    assert await w.submit(IdentifyIn("room-1", ANNA)) == anna  # the reader reads the card again
    await w.submit(ReadingIn("room-1", "bp-1", bp(122, 81)))
    bo = await w.submit(IdentifyIn("room-1", BO))  # the next patient still opens a new session
    bo2 = await w.submit(IdentifyIn("room-1", BO))  # a card tapped again while the hub runs: a new visit
    await store.stop()
    assert store.sessions() == [anna, bo, bo2] and bo2 != bo
    assert [s for _, s in store.readings()] == [anna, anna]
    conn = sqlite3.connect(store.path)
    tags = [t for (t,) in conn.execute("SELECT subject_tag FROM sessions")]
    conn.close()
    assert all(t and ANNA.national_id not in t and BO.national_id not in t for t in tags)  # keyed hash only


async def test_a_repeat_in_the_same_group_as_its_first_report_is_the_same_reading(tmp_path: Path) -> None:
    store = Store(tmp_path)
    w = await store.start()
    seqs = await asyncio.gather(w.submit(ReadingIn("room-1", "bp-1", bp(120, 80))),
                                w.submit(ReadingIn("room-1", "bp-1", bp(120, 80, repeats=True))))
    await store.stop()
    assert seqs[0] == seqs[1] and len(store.readings()) == 1  # the repeat in the same group is the same one


async def test_a_repeat_on_show_before_its_driver_started_never_binds_to_a_later_session(tmp_path: Path) -> None:
    """Anna was weighed while the hub was down; Bo's card is read before the scale's first poll."""
    store = Store(tmp_path)
    w = await store.start()
    await w.submit(ReadingIn("room-1", "scale-1", bp(120, 80)))  # an earlier patient's, so the device is known
    w = await store.restart()  # the drivers start now
    store.clock.now += 500
    bo = await w.submit(IdentifyIn("room-1", BO))  # read 500 ms after the drivers started
    store.clock.now += 300
    await w.submit(ReadingIn("room-1", "scale-1", bp(121, 81, repeats=True), on_show_ms=800))  # Anna's
    store.clock.now += 5_000
    await w.submit(ReadingIn("room-1", "scale-1", bp(122, 82)))  # Bo's own, the driver saw it appear
    await store.stop()
    assert [s for _, s in store.readings()][1:] == [None, bo]
