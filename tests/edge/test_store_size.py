"""hub.db at most 150 B per stored reading (issue 21), and its audit log kept for its retention only.

The size is pinned on a day like the soak rig's (``bench/bench_hub_rss.py``): visits opened by an
ID card, devices sending readings with their own clock and frame, synced to the cloud, a nurse's
status page open all along (one view audited per visit it had not shown yet), then the hub's clean
stop, and the file divided by the readings it holds, as the soak divides. No timing is measured.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from drivers.base import Measurement
from edge.store import reader as q
from edge.store.ledger import IdentifyIn, ReadingIn
from edge.store.schema import open_db
from protocol import codes
from protocol.model import Observation, Subject
from tests.edge.hubkit import started, synced, wait_until

DAY_MS = 86_400_000
VISITS = 160
#: the soak rig's devices, one frame each as their simulators send it, and how many readings each gives per visit
#: there (~38 a visit, 1 in 6 at the station with the card reader, so bound to the visit): (station, device, n)
MIX = (("room-1", "hw-1", 3), ("room-1", "bp-1", 3), ("room-2", "mb-tcp-1", 10), ("room-2", "mb-rtu-1", 10),
       ("room-2", "tanita-1", 2), ("room-2", "mq-1", 2), ("room-3", "ble-bp-1", 2), ("room-3", "ble-weight-1", 2),
       ("room-3", "ble-thermometer-1", 2), ("room-3", "ble-body-composition-1", 2))


def _obs(code: str, value: float, unit: str) -> Observation:
    return Observation(code=code, value=value, unit=unit)


def _reading(device: str, n: int) -> Measurement:
    """Reading ``n`` of ``device``, shaped like its simulator's (values, device clock and frame vary with n)."""
    t = f"2026-12-07T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}"
    v = n % 40
    if device.startswith("mb-"):
        return Measurement(kind="height_weight", raw=b"\x00\x01\x00\x01\x00\x00\x05\xdc%c4\x00\x00\x00\xc8" % (60 + v),
                           observations=(_obs(codes.HEIGHT, 150.0, "cm"), _obs(codes.WEIGHT, 45.0 + v, "kg"),
                                         _obs(codes.BMI, 20.0, "kg/m2")))
    if device == "hw-1":
        return Measurement(kind="height_weight", raw=b"\xa5Z\x07\x037\x06L\x02\xb0%c" % v,
                           observations=(_obs(codes.HEIGHT, 161.2, "cm"), _obs(codes.WEIGHT, 68.8 + v, "kg"),
                                         _obs(codes.BMI, 26.5, "kg/m2")))
    if device == "tanita-1":
        return Measurement(kind="height_weight", device_time=t, raw=(
            b'{0,16,~0,1,~1,1,~2,1,MO,"DC-217A",DT,"05/03/2025",Ti,"09:41",GE,1,AG,41,Hm,156.9,Wk,%d.5,CS,64'
            % (50 + v)),
            observations=(_obs(codes.HEIGHT, 156.9, "cm"), _obs(codes.WEIGHT, 50.5 + v, "kg"),
                          _obs(codes.BMI, 24.6, "kg/m2")))
    if device == "mq-1":
        return Measurement(kind="blood_pressure", device_time=t, raw=(
            b'{"device_id": "mq-1", "seq": %d, "time": "%s", "kind": "blood_pressure", "measurements": '
            b'[{"code": "8480-6", "value": %d, "unit": "mmHg"}, {"code": "8462-4", "value": 71, "unit": "mmHg"}, '
            b'{"code": "8867-4", "value": 61, "unit": "/min"}]}' % (n, t.encode(), 100 + v)),
            observations=(_obs(codes.SYSTOLIC, 100.0 + v, "mm[Hg]"), _obs(codes.DIASTOLIC, 71.0, "mm[Hg]"),
                          _obs(codes.PULSE, 61.0, "/min")))
    if device in ("bp-1", "ble-bp-1"):
        raw = (b"P:--, 80,%3d, 93, 81,000,000,000, 0" % (100 + v) if device == "bp-1"
               else b"\x06%c\x00F\x00U\x00\xe9\x07\x01\x01\x08\x00\x00<\x00" % (100 + v))
        return Measurement(kind="blood_pressure", device_time=None if device == "bp-1" else t, raw=raw,
                           observations=(_obs(codes.SYSTOLIC, 100.0 + v, "mm[Hg]"),
                                         _obs(codes.DIASTOLIC, 81.0, "mm[Hg]"),
                                         _obs(codes.MEAN_PRESSURE, 93.0, "mm[Hg]"), _obs(codes.PULSE, 80.0, "/min")))
    if device == "ble-thermometer-1":
        return Measurement(kind="temperature", device_time=t, raw=b"\x02$%c\x00\x00\xe9\x07\x01\x01\x08\x00\x00" % v,
                           observations=(_obs(codes.TEMPERATURE, 36.0 + v / 10, "Cel"),))
    if device == "ble-weight-1":
        return Measurement(kind="weight", device_time=t, raw=b"\x02\x10%c\xe9\x07\x01\x01\x08\x00\x00" % v,
                           observations=(_obs(codes.WEIGHT, 50.0 + v, "kg"),))
    return Measurement(kind="body_composition", device_time=t, raw=b"\x02\x00%c\x00\xe9\x07\x01\x01\x08\x00\x00" % v,
                       observations=(_obs(codes.BODY_FAT, 15.0 + v / 10, "%"),))


def _patient(i: int) -> Subject:
    return Subject(national_id="11010519491231002X", name=f"王芳{i}", sex="2", birth_date="1949-12-31",
                   ethnic_code="01", address="北京市朝阳区某某街道某某小区12号楼3单元402室",
                   authority="北京市公安局朝阳分局", valid_from="2015-01-01", valid_to="2035-01-01", source="idcard")


async def test_a_synced_day_costs_at_most_150_bytes_per_reading_after_a_clean_stop(hub_dir: Path) -> None:
    hub = await started(hub_dir)
    n = 0
    for visit in range(VISITS):
        await hub.writer.submit(IdentifyIn("room-1", _patient(visit)))
        await hub.audit("view", "nurse", f"status page: {visit + 1} visits today")  # a visit not shown before
        batch = [ReadingIn(station, device, _reading(device, n + k)) for station, device, count in MIX
                 for k in range(count)]
        await asyncio.gather(*(hub.writer.submit(item) for item in batch))
        n += len(batch)
    await hub.close_session("room-1", "finished")
    await wait_until(lambda: synced(hub))
    db = hub.cfg.db_path
    await hub.stop()  # the clean stop folds the write-ahead log into hub.db
    conn = sqlite3.connect(db)
    try:
        stored = conn.execute("SELECT count(*) FROM records WHERE type = 0").fetchone()[0]
        bound = conn.execute("SELECT count(*) FROM records WHERE type = 0 AND session_id IS NOT NULL").fetchone()[0]
        tables = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    finally:
        conn.close()
    size = sum(p.stat().st_size for p in db.parent.glob("hub.db*"))
    per_reading = size / stored
    print(f"hub.db {size} B, {stored} readings ({bound} bound): {per_reading:.1f} B per reading; by table: {tables}")
    assert stored == n and bound == VISITS * sum(count for station, _, count in MIX if station == "room-1")
    assert per_reading <= 150, f"{per_reading:.0f} B per reading; by table: {tables}"
    # a view per visit shown, not one per page load (the rig's poller loaded the page every other reading: 28 B)
    assert tables["audit"] / stored < 3


async def test_audit_rows_older_than_the_retention_are_pruned_at_start(hub_dir: Path) -> None:
    now = 1_796_000_000_000
    conn, _ = open_db(hub_dir.parent / "data" / "hub.db", "clinic-1", now)
    conn.executemany("INSERT INTO audit (at, kind, actor, detail) VALUES (?, 'view', 'nurse', 'status page')",
                     [(now - days * DAY_MS, ) for days in (500, 401, 399, 1) for _ in range(3000)])
    conn.close()
    hub = await started(hub_dir, clock=lambda: now)
    try:
        assert hub.cfg.audit_retention_days == 400  # the default, as the cloud's [audit] retention_days
        await wait_until(lambda: len(hub.reader.audit(10_000)) == 6000)
        ages = {(now - a["at"]) // DAY_MS for a in hub.reader.audit(10_000)}
    finally:
        await hub.stop()
    assert ages == {399, 1}


async def test_pruning_the_audit_log_goes_in_chunks_and_hands_pages_back(tmp_path: Path) -> None:
    conn, _ = open_db(tmp_path / "hub.db", "hub-1", 0)
    conn.executemany("INSERT INTO audit (at, kind, actor, detail) VALUES (?, 'view', 'nurse', ?)",
                     [(at, "status page: 200 visits today " * 4) for at in range(20_000)])
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    full = (tmp_path / "hub.db").stat().st_size
    assert q.prune_audit(15_000, limit=q.AUDIT_PRUNE_CHUNK)(conn) == q.AUDIT_PRUNE_CHUNK  # a chunk: pages stay
    assert q.prune_audit(15_000)(conn) == q.AUDIT_PRUNE_CHUNK
    assert q.prune_audit(15_000)(conn) == q.AUDIT_PRUNE_CHUNK
    assert q.prune_audit(15_000)(conn) == 0  # the last, short chunk hands the free pages back
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    left = conn.execute("SELECT min(at), count(*) FROM audit").fetchone()
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    conn.close()
    assert left == (15_000, 5_000)
    # three quarters deleted: what is beyond the 1 MiB kept for the next inserts went back to the file system
    assert free <= q.KEEP_FREE_PAGES and (tmp_path / "hub.db").stat().st_size < full * 0.7
