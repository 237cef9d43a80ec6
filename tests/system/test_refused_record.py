"""Issue 17 finding 2, over real processes: one record the cloud refuses must not stop a hub.

A real hub (``mchub edge run``) syncs to a real cloud (``mchub cloud serve``, SQLite) while a
device sends readings over TCP; one of them carries a value whose code the cloud does not
know. Before the fix the cloud refused the whole batch (400 ``invalid_record``) and the hub
retried it for ever: nothing behind it arrived. Now the cloud refuses that record alone:
every other reading arrives exactly once, the record sits in the hub's dead-letter list
with its reason, the hub's status shows the alarm, and staff resend it without the bad
value (a new reading that names the original), which the cloud then stores.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from edge.web.auth import read_console_token
from tests.support.linedevice import LineDevice
from tests.support.services import free_port
from tests.support.system import CloudProc, HubRig, cloud_numbers, cloud_sql, expected_readings, mchub, reconcile
from tests.support.waiting import HANG_S

TOTAL = 60
BAD = 20


def hub_rows(rig: HubRig, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{rig.db}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()


def wait_for(check: object, what: str, timeout: float = HANG_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_refused_record_goes_to_the_dead_letter_list_and_every_reading_behind_it_arrives(tmp_path: Path) -> None:
    cloud = CloudProc(tmp_path / "cloud", f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}").start()
    device = LineDevice(total=TOTAL, window=8, bad=frozenset({BAD})).start()
    rig = HubRig(tmp_path / "hub", cloud, device, sync={"batch_max_records": 10})
    web_port = free_port()
    rig.cfg.write_text(rig.cfg.read_text().replace("port = 0\n", f"port = {web_port}\n", 1))
    proc = rig.start()
    try:
        last = rig.wait_synced()  # before the fix: the hub never got past the bad batch
        assert last == TOTAL
        report = reconcile([n for n in expected_readings(device) if n != BAD],
                           cloud_numbers(cloud.db_url, rig.hub_id))
        assert report.ok, report  # readings arrived behind the refused record: 59 of 59, none twice
        assert BAD not in cloud_numbers(cloud.db_url, rig.hub_id)
        assert hub_rows(rig, "SELECT seq, reason, resolved_at FROM dead_letters") == [(BAD, "unknown_code", None)]
        assert cloud_sql(cloud.db_url, "SELECT seq, reason FROM refused_records WHERE hub_id = $1",
                         rig.hub_id) == [(BAD, "unknown_code")]
        # the alarm: the status (console text, through the catalog) and the JSON API the page renders from
        status = mchub("edge", "status", "--config", str(rig.cfg), cwd=rig.base)
        assert "1 record(s) refused by the cloud" in status and "unknown_code" in status, status
        listed = mchub("edge", "dead-letters", "list", "--config", str(rig.cfg), cwd=rig.base)
        assert f"seq {BAD}" in listed and "mchub-no-such-code" in listed, listed
        # staff correct it: resend without the value the cloud does not know
        out = mchub("edge", "dead-letters", "resend", str(BAD), "--drop", "mchub-no-such-code", "--by", "nurse.li",
                    "--config", str(rig.cfg), cwd=rig.base)
        new_seq = int(out.split()[-1])
        assert new_seq == TOTAL + 1
        wait_for(lambda: rig.state()[1] == new_seq, "the resent reading to be acknowledged")
        rows = cloud_sql(cloud.db_url, "SELECT seq, device_time, status, observations FROM readings "
                                       "WHERE hub_id = $1 AND seq = $2", rig.hub_id, new_seq)
        assert len(rows) == 1 and rows[0][1] == f"n{BAD}"
        assert any(s.startswith("resent_of:") for s in json.loads(str(rows[0][2])))
        assert "mchub-no-such-code" not in str(rows[0][3])
        assert hub_rows(rig, "SELECT resolved_by, resent_seq FROM dead_letters") == [("nurse.li", new_seq)]
        token = read_console_token(rig.base / "data")
        assert token is not None
        req = urllib.request.Request(f"http://127.0.0.1:{web_port}/api/status",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read())["dead_letters_open"] == 0
        assert sorted(cloud_numbers(cloud.db_url, rig.hub_id)) == sorted(expected_readings(device))
    finally:
        rig.stop(proc)
        cloud.stop()
        device.stop()


@pytest.mark.parametrize("db", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_hub_killed_before_it_stores_the_refusal_gets_it_again_and_keeps_it_once(
        tmp_path: Path, db: str, request: pytest.FixtureRequest) -> None:
    """SIGKILL after the cloud stored the batch (refusal included) but before the hub stored the ack:
    the resent batch is a duplicate whose ack names the same refusal (from ``refused_records``)."""
    url = (f"sqlite:///{tmp_path / 'cloud' / 'cloud.db'}" if db == "sqlite"
           else str(request.getfixturevalue("pg_dsn")))
    cloud = CloudProc(tmp_path / "cloud", url).start()
    bad = frozenset({1, 30})  # reading 1 is in the first batch: the crash hits its ack
    device = LineDevice(total=TOTAL, window=8, bad=bad).start()
    rig = HubRig(tmp_path / "hub", cloud, device, sync={"batch_max_records": 10})
    try:
        proc = rig.start(MCHUB_CRASH_AT="after_response", MCHUB_CRASH_AFTER="1")
        assert proc.wait(60) == -signal.SIGKILL, rig.log_tail()
        # the cloud kept it (and, with batches in flight, perhaps those of batches sent behind it)...
        assert (1,) in cloud_sql(cloud.db_url, "SELECT seq FROM refused_records")
        assert hub_rows(rig, "SELECT COUNT(*) FROM dead_letters") in ([(0,)], [])  # ...the hub never heard
        proc = rig.start()
        try:
            rig.wait_synced()
        finally:
            rig.stop(proc)
        report = reconcile([n for n in expected_readings(device) if n not in bad],
                           cloud_numbers(cloud.db_url, rig.hub_id))
        assert report.ok, report
        assert hub_rows(rig, "SELECT seq, reason FROM dead_letters ORDER BY seq") == [
            (1, "unknown_code"), (30, "unknown_code")]
        assert cloud_sql(cloud.db_url, "SELECT seq, reason FROM refused_records ORDER BY seq") == [
            (1, "unknown_code"), (30, "unknown_code")]
        assert cloud_sql(cloud.db_url, "SELECT COUNT(*) FROM audit_log WHERE action = 'record.refused'") == [(2,)]
    finally:
        cloud.stop()
        device.stop()
