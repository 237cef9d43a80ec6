"""Sync client against the reference cloud: every HTTP answer of docs/protocol.md §2 handled."""

from __future__ import annotations

import json
from pathlib import Path

from edge import identity
from tests.edge.hubkit import add_readings, started, synced, wait_until
from tests.support.refcloud import RefCloud


def cloud_numbers(cloud: RefCloud) -> list[int]:
    rows = cloud.records("clinic-1")
    assert [r[1] for r in rows] == list(range(1, len(rows) + 1)), "cloud stream has a gap or a duplicate"
    return [int(json.loads(r[3])["device_time"][1:]) for r in rows if r[2] == "Reading"]


async def test_faults_400_503_413_drop_and_lost_ack_deliver_everything_once(hub_dir: Path, refcloud: RefCloud) -> None:
    refcloud.faults.extend(["503", "413", "drop", "ack_lost", "400", "503", "ack_lost"])
    hub = await started(hub_dir)
    try:
        for start in range(0, 600, 100):
            await add_readings(hub, range(start + 1, start + 101))
        await wait_until(lambda: synced(hub) and not refcloud.faults)
    finally:
        await hub.stop()
    assert cloud_numbers(refcloud) == list(range(1, 601))


async def test_revoked_hub_stops_keeps_data_and_resumes_when_told(hub_dir: Path, refcloud: RefCloud) -> None:
    refcloud.revoked.add("clinic-1")
    hub = await started(hub_dir)
    try:
        await add_readings(hub, range(1, 11))
        await wait_until(lambda: hub.sync is not None and hub.sync.state == "blocked")
        assert "403" in (hub.sync.last_error or "") and hub.reader.state()["acked_through"] == 0
        refcloud.revoked.clear()
        hub.sync.sync_now()
        await wait_until(lambda: synced(hub))
    finally:
        await hub.stop()
    assert cloud_numbers(refcloud) == list(range(1, 11))


async def test_cloud_restored_from_backup_gets_the_missing_records_again(hub_dir: Path, refcloud: RefCloud) -> None:
    hub = await started(hub_dir)
    try:
        await add_readings(hub, range(1, 51))
        await wait_until(lambda: synced(hub))
        with refcloud._lock:  # the cloud loses everything after seq 20 (restore from an older backup)
            refcloud.db.execute("DELETE FROM records WHERE seq > 20")
            refcloud.db.execute("UPDATE marks SET mark = 20")
        await add_readings(hub, range(51, 61))  # starts at 51 > 21: the cloud answers 409 with mark 20
        await wait_until(lambda: synced(hub) and len(refcloud.records("clinic-1")) == 60)
        assert any(a["kind"] == "cloud_behind" for a in hub.reader.audit())
    finally:
        await hub.stop()
    assert cloud_numbers(refcloud) == list(range(1, 61))


async def test_rotated_key_unknown_to_the_cloud_falls_back_to_the_previous_key(hub_dir: Path,
                                                                              refcloud: RefCloud) -> None:
    identity.rotate(hub_dir.parent / "identity")  # the cloud still knows only the old key
    hub = await started(hub_dir)
    try:
        await add_readings(hub, range(1, 6))
        await wait_until(lambda: synced(hub))
    finally:
        await hub.stop()
    assert cloud_numbers(refcloud) == list(range(1, 6))


async def test_a_new_reading_is_sent_promptly_in_one_small_batch(hub_dir: Path, refcloud: RefCloud) -> None:
    hub = await started(hub_dir)
    try:
        await add_readings(hub, range(1, 2))
        # a missed wake-up would wait out the idle spell (prune_interval_s, 60 s): 30 s tells the two
        # apart without failing on a loaded machine
        await wait_until(lambda: synced(hub), seconds=30)
        assert hub.sync is not None and hub.sync.last_success_ms and hub.sync.last_error is None
    finally:
        await hub.stop()
    assert refcloud.requests == 1


async def test_backlog_drains_in_many_batches_while_the_next_is_sealed_ahead(tmp_path: Path,
                                                                           refcloud: RefCloud) -> None:
    from tests.edge.conftest import make_hub_dir

    cfg = make_hub_dir(tmp_path / "hub", refcloud, stations='[[stations]]\nid = "room-1"\n',
                       sync="batch_max_records = 50\n")
    refcloud.down = True
    hub = await started(cfg)
    try:
        for start in range(0, 1000, 250):
            await add_readings(hub, range(start + 1, start + 251))
        refcloud.faults.extend(["413", "ack_lost", "drop", "503", "ack_lost"])
        refcloud.down = False
        assert hub.sync is not None
        hub.sync.sync_now()
        await wait_until(lambda: synced(hub), seconds=60)
    finally:
        await hub.stop()
    assert cloud_numbers(refcloud) == list(range(1, 1001))
    assert refcloud.requests >= 20


async def test_a_batch_refused_inside_the_window_is_resent_and_the_batches_behind_it_follow_once(
        tmp_path: Path, refcloud: RefCloud) -> None:
    from tests.edge.conftest import make_hub_dir

    cfg = make_hub_dir(tmp_path / "hub", refcloud, stations='[[stations]]\nid = "room-1"\n',
                       sync="batch_max_records = 50\nbatches_in_flight = 4\n")
    refcloud.down = True
    hub = await started(cfg)
    try:
        for start in range(0, 1000, 250):
            await add_readings(hub, range(start + 1, start + 251))
        # the 2nd, 5th and 9th batch of the backlog meet a refusal, a busy cloud and a lost answer
        refcloud.batch_faults.update({51: "400", 201: "503", 401: "drop"})
        refcloud.down = False
        assert hub.sync is not None
        hub.sync.sync_now()
        await wait_until(lambda: synced(hub), seconds=60)
        audit = hub.reader.audit()
    finally:
        await hub.stop()
    assert cloud_numbers(refcloud) == list(range(1, 1001))
    assert not refcloud.batch_faults
    assert 409 in refcloud.statuses  # batches behind a refused one were answered 409 and resent...
    assert not any(a["kind"] == "cloud_behind" for a in audit)  # ...without the hub lowering its mark
