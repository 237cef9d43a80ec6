"""Backup and restore of hub.db: a restored hub gets a new epoch, and nothing is lost or sent twice.

Story: the hub syncs readings 1-20; the network goes down and 21-30 wait on the hub; a
backup is taken while it runs; the network comes back and 21-30 reach the cloud; then
31-35 are taken offline and the SD card dies. The technician restores the backup: the
backup's unacknowledged tail (21-30) is re-uploaded under its old epoch (the cloud
already has it: nothing is stored twice), 31-35 are recovered from the replaced database
with ``export --from-db``, and the restored hub continues under a NEW epoch from seq 1.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from edge import config, identity
from edge.backup import backup, restore
from edge.errors import StoreError
from edge.export import export
from edge.store.reader import Reader
from tests.edge.hubkit import add_readings, started, synced, wait_until
from tests.support.commands import commands_in, parse_error
from tests.support.refcloud import RefCloud

ROOT = Path(__file__).resolve().parents[2]


def numbers(cloud: RefCloud) -> list[int]:
    return sorted(int(json.loads(r[3])["device_time"][1:]) for r in cloud.records("clinic-1") if r[2] == "Reading")


async def test_restored_hub_gets_a_new_epoch_and_loses_or_duplicates_nothing(hub_dir: Path,
                                                                              refcloud: RefCloud) -> None:
    cfg = config.load(hub_dir)
    hub = await started(hub_dir)
    try:
        await add_readings(hub, range(1, 21))
        await wait_until(lambda: synced(hub))
        refcloud.down = True
        await add_readings(hub, range(21, 31))
        saved = backup(cfg.db_path, hub_dir.parent / "backup.db")  # while the hub runs
        assert (saved.next_seq, saved.acked_through) == (31, 20)
        refcloud.down = False
        await wait_until(lambda: synced(hub))
        refcloud.down = True
        await add_readings(hub, range(31, 36))  # never synced: the card dies
    finally:
        await hub.stop()
    old_epoch = saved.epoch
    refcloud.down = False
    ident = identity.load(cfg.identity_dir)
    done = restore(cfg.data_dir, ident, hub_dir.parent / "backup.db", cfg.sync.url)
    assert done.old_epoch == old_epoch and done.new_epoch != old_epoch
    assert (done.first, done.last) == (21, 30) and done.exported is not None
    assert "HTTP 200" in done.uploaded
    assert numbers(refcloud) == list(range(1, 31))  # the re-upload stored nothing twice
    assert done.replaced is not None
    old = Reader(done.replaced, ident.decrypt, readonly=True)
    try:
        export(old, ident, hub_dir.parent / "late.mchx")
    finally:
        old.close()
    assert refcloud.import_export((hub_dir.parent / "late.mchx").read_bytes()) == [200]
    hub = await started(hub_dir)
    try:
        st = hub.reader.state()
        assert st["epoch"] == done.new_epoch and st["next_seq"] == 1 and st["acked_through"] == 0
        assert any(a["kind"] == "restore" for a in hub.reader.audit())
        await add_readings(hub, range(36, 41))
        await wait_until(lambda: synced(hub))
    finally:
        await hub.stop()
    assert numbers(refcloud) == list(range(1, 41))  # every reading exactly once
    epochs = {(r[0], r[1]) for r in refcloud.records("clinic-1")}
    assert {s for e, s in epochs if e == done.new_epoch} == set(range(1, 6))


def test_restore_refuses_another_hubs_backup_and_a_damaged_file(hub_dir: Path, tmp_path: Path) -> None:
    cfg = config.load(hub_dir)
    ident = identity.load(cfg.identity_dir)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE sync_state (id INTEGER, hub_id TEXT, epoch INTEGER, next_seq INTEGER, "
                "acked_through INTEGER)")
    con.execute("INSERT INTO sync_state VALUES (1, 'clinic-9', 5, 1, 0)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="belongs to hub 'clinic-9'"):
        restore(cfg.data_dir, ident, other, None)
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database" * 100)
    with pytest.raises(StoreError, match="not a readable hub database"):
        restore(cfg.data_dir, ident, junk, None)


def test_backup_and_restore_commands(hub_dir: Path, tmp_path: Path) -> None:
    def mchub(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mchub", "edge", *args, "--config", str(hub_dir)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    missing = mchub("backup", "--out", str(tmp_path / "b.db"))
    assert missing.returncode == 2 and "has never run" in missing.stderr
    cfg = config.load(hub_dir)
    from edge.store.schema import open_db

    conn, _ = open_db(cfg.db_path, "clinic-1")
    conn.close()
    made = mchub("backup", "--out", str(tmp_path / "b.db"))
    assert made.returncode == 0, made.stderr
    back = mchub("restore", "--from", str(tmp_path / "b.db"))
    assert back.returncode == 0, back.stderr
    assert "new epoch" in back.stdout
    for argv in commands_in(missing.stderr + back.stdout):  # what the commands tell the technician to run
        assert parse_error(argv) is None, argv
