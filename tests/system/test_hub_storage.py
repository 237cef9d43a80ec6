"""The hub's own storage fails: a full disk, a power cut while it is full, a damaged database.

Disk full runs on a real, small tmpfs (when root may mount one; otherwise the DiskGuard
unit test tests/edge/test_store.py covers the logic without a real full disk):

1. the guard (``min_free_mb``) trips: the hub holds new readings and says so loudly
   (devices keep theirs, unacknowledged), and nothing is corrupted;
2. without the guard the disk really fills (SQLITE_FULL): the writer retries and alerts,
   and a power cut (SIGKILL) in that state loses nothing;
3. space returns: the same database, the same epoch, everything reaches the cloud once.

A damaged hub.db (garbage written over its pages) is detected at start, moved to
``data/quarantine/`` with the unsynced range reported, a new epoch starts, and the
readings the device still holds arrive in the cloud in the new epoch — none lost.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from firmware_sim.netfaults import Mode
from tests.support.linedevice import LineDevice
from tests.support.system import (
    CloudProc,
    HubRig,
    ThreadedProxy,
    cloud_numbers,
    cloud_sql,
    expected_readings,
    mchub,
    reconcile,
)
from tests.support.waiting import HANG_S, wait_until


def wait_for(what: str, pred: Callable[[], bool], timeout: float = HANG_S, rig: HubRig | None = None) -> None:
    wait_until(pred, what, timeout, interval=0.1,
               detail=lambda: "" if rig is None else f"device acked {len(rig.device.acked)}; hub log: {rig.log_tail()}")


def settled(device: LineDevice, seconds: float = 1.5) -> bool:
    """True when the device got no new acknowledgement for ``seconds``."""
    before = len(device.acked)
    time.sleep(seconds)
    return len(device.acked) == before


@contextlib.contextmanager
def small_tmpfs(path: Path, size_mb: int) -> Iterator[Path]:
    path.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; tests/edge/test_store.py covers the DiskGuard logic")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); tests/edge/test_store.py covers the "
                    "DiskGuard logic")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def checkpoint(db: Path) -> None:
    """Fold the write-ahead log into the database and truncate it (what a clean shutdown leaves)."""
    conn = sqlite3.connect(db)
    try:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "the checkpoint was blocked"
    finally:
        conn.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


@pytest.mark.slow
def test_a_hub_opens_its_database_after_a_power_cut_on_a_nearly_full_disk(tmp_path: Path) -> None:
    """The power cut left the readings in the write-ahead log and 64 kB free. Opening must not fold the log
    on the way (the start check's read-write close did, ran out of room part-way, grew hub.db by what it had
    written, and the hub then refused to open: "cannot open hub.db: database or disk is full", every time)."""
    from edge.store.schema import open_db

    with small_tmpfs(tmp_path / "disk", 16) as disk:
        db = disk / "hub.db"
        conn, _ = open_db(db, "H1")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("CREATE TABLE filler (x BLOB)")
        for _ in range(300):
            conn.execute("INSERT INTO filler VALUES (?)", (os.urandom(4000),))
        cut = tmp_path / "at-the-power-cut"
        cut.mkdir()
        for suffix in ("", "-wal"):  # the files as the power cut left them: the log not folded in
            shutil.copy(f"{db}{suffix}", cut / f"hub.db{suffix}")
        conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        for suffix in ("", "-wal"):
            shutil.copy(cut / f"hub.db{suffix}", f"{db}{suffix}")
        assert Path(f"{db}-wal").stat().st_size > 1 << 20 and db.stat().st_size <= 8192
        (disk / "ballast").write_bytes(b"\0" * max(0, shutil.disk_usage(disk).free - (64 << 10)))
        conn, quarantine = open_db(db, "H1")
        try:
            assert quarantine is None
            assert conn.execute("SELECT count(*) FROM filler").fetchone()[0] == 300  # every row readable
        finally:
            conn.close()


def test_full_disk_holds_input_loudly_survives_a_power_cut_and_recovers(tmp_path: Path) -> None:
    cloud = CloudProc(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}").start()
    proxy = ThreadedProxy(cloud.port).start()
    device = LineDevice(total=4000, window=64, card_every=97).start()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        with small_tmpfs(tmp_path / "disk", 16) as disk:
            rig = HubRig(tmp_path / "hub", cloud, device, sync_url=proxy.url)
            (rig.base / "data").symlink_to(disk)
            proxy.set(Mode(refuse=True))  # the cloud is out of reach: nothing is pruned, the disk fills
            ballast = disk / "ballast"
            ballast.write_bytes(b"\0" * (shutil.disk_usage(disk).free - (1536 << 10)))  # ~1.5 MB left
            rig.cfg.write_text(rig.cfg.read_text().replace("min_free_mb = 0", "min_free_mb = 1"))
            # 1. the guard trips: readings are held, loudly, while the hub stays up
            procs.append(rig.start())
            wait_for("the disk alarm", lambda: "DISK NEARLY FULL" in rig.log_tail(100_000), rig=rig)
            wait_for("the device to be held", lambda: settled(device))
            held_at = len(device.acked)
            print(f"phase 1: the guard held the device at {held_at} readings")
            assert 0 < held_at < device.total and procs[-1].poll() is None
            assert integrity(rig.db) == "ok"
            # 2. no guard: the disk really fills; then the power goes
            procs[-1].kill()
            procs[-1].wait()
            # the power cut left every reading in the write-ahead log (1.5 MB, hub.db itself one page). The
            # hub's start checks the file and closes it, and that close folds the log into hub.db: with only
            # 64 kB left that fold met the full disk first and the hub refused to open its database ("cannot
            # open hub.db: database or disk is full", at load 12-18) instead of meeting SQLITE_FULL while
            # storing. So the log is folded in here, with room made for it, before the 64 kB are measured.
            print(f"phase 2: after the power cut {({p.name: p.stat().st_size for p in disk.iterdir() if p.is_file()})}")
            os.truncate(ballast, ballast.stat().st_size - (4 << 20))
            checkpoint(rig.db)
            rig.cfg.write_text(rig.cfg.read_text().replace("min_free_mb = 1", "min_free_mb = 0"))
            (disk / "ballast2").write_bytes(b"\0" * max(0, shutil.disk_usage(disk).free - (64 << 10)))
            procs.append(rig.start())
            wait_for("SQLite to hit the full disk", lambda: "database write failed" in rig.log_tail(100_000), rig=rig)
            assert procs[-1].poll() is None, "the hub died on a full disk"
            full_at = len(device.acked)
            procs[-1].kill()  # power cut while the disk is full
            procs[-1].wait()
            # 3. space returns; the cloud is reachable again
            ballast.unlink()
            (disk / "ballast2").unlink()
            assert integrity(rig.db) == "ok"
            proxy.set(Mode())
            procs.append(rig.start())
            last = rig.wait_synced()
            assert rig.stop(procs[-1]) == 0
            assert not (disk / "quarantine").exists()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        proxy.stop()
        device.stop()
        cloud.stop()
    print(f"disk full: guard held the device at {held_at} readings, SQLITE_FULL at {full_at}")
    report = reconcile(expected_readings(device), cloud_numbers(cloud.db_url, rig.hub_id))
    assert report.ok, report
    assert len(cloud_sql(cloud.db_url, "SELECT DISTINCT epoch FROM readings")) == 1  # never quarantined
    assert last >= report.produced


@pytest.mark.slow
def test_damaged_database_is_quarantined_exported_and_imported_without_loss_or_duplicates(tmp_path: Path) -> None:
    cloud = CloudProc(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}").start()
    proxy = ThreadedProxy(cloud.port).start()
    # measures until finish(): readings keep coming while the cloud is cut off, however slowly the hub synced before
    device = LineDevice(total=None, window=64, card_every=97, rate=400).start()
    rig = HubRig(tmp_path / "hub", cloud, device, sync_url=proxy.url)
    try:
        proc = rig.start()
        wait_for("some readings to reach the cloud", lambda: rig.state()[1] > 200)
        proxy.set(Mode(refuse=True), cut=True)  # what follows stays on the hub only
        wait_for("readings stored but not synced", lambda: rig.state()[0] - rig.state()[1] > 100)
        assert rig.stop(proc) == 0
        conn = sqlite3.connect(rig.db)
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sessions'").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        conn.close()
        with open(rig.db, "r+b") as f:  # the SD card returns garbage for the sessions table's root page
            f.seek((root - 1) * size)
            f.write(b"\x0d" + b"\xff" * 7)
        proxy.set(Mode())
        proc = rig.start()
        wait_for("the quarantine", lambda: (rig.base / "data" / "quarantine").exists())
        device.finish()
        last = rig.wait_synced()
        assert rig.stop(proc) == 0
        # the technician's recovery (the hub's log says how): export the readable rest, import it in the cloud
        [damaged] = (rig.base / "data" / "quarantine").glob("*.db")
        usb = tmp_path / "usb.mchx"
        mchub("edge", "export", "--config", str(rig.cfg), "--from-db", str(damaged), "--out", str(usb), cwd=rig.base)
        mchub("cloud", "import", "--config", "cloud.toml", str(usb), cwd=cloud.base)
    finally:
        proxy.stop()
        device.stop()
        cloud.stop()
    log = rig.log_tail(200_000)
    assert "hub.db was damaged" in log and "a new epoch started" in log and "--from-db" in log
    assert len(cloud_sql(cloud.db_url, "SELECT DISTINCT epoch FROM readings")) == 2  # seqs never reused
    report = reconcile(expected_readings(device), cloud_numbers(cloud.db_url, rig.hub_id))
    assert report.ok, report
    assert last > 0
