"""`mchub edge` commands as a technician uses them: init, check-config, status, export (+ cloud import)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mchub.cli import main
from tests.edge.hubkit import add_readings, started
from tests.support.refcloud import RefCloud


def test_init_prints_the_public_key_and_refuses_to_overwrite(tmp_path: Path, refcloud: RefCloud,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hub.toml").write_text('[hub]\nidentity_dir = "id"\n', encoding="utf-8")
    key = refcloud.write_key_file(tmp_path / "cloud.json")
    args = ["edge", "init", "--hub-id", "clinic-9", "--cloud-key", str(key), "--config", str(tmp_path / "hub.toml")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "ed25519:" in out and "mchub cloud hub add --id clinic-9 --public-key " in out
    assert oct((tmp_path / "id" / "hub_ed25519.key").stat().st_mode & 0o777) == "0o600"
    assert main(args) == 2 and "already holds" in capsys.readouterr().err
    assert main(["edge", "check-config", "--config", str(tmp_path / "hub.toml")]) == 0
    assert "hub clinic-9" in capsys.readouterr().out


def test_check_config_reports_file_key_and_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hub.toml").write_text("[web]\nport = -1\n", encoding="utf-8")
    assert main(["edge", "check-config", "--config", str(tmp_path / "hub.toml")]) == 2
    err = capsys.readouterr().err
    assert "hub.toml: web.port" in err and "fix:" in err


def test_status_and_export_then_cloud_import(hub_dir: Path, refcloud: RefCloud,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    refcloud.down = True  # no network at the clinic

    async def record() -> None:
        hub = await started(hub_dir)
        await add_readings(hub, range(1, 8))
        await hub.stop()

    asyncio.run(record())
    assert main(["edge", "status", "--config", str(hub_dir)]) == 0
    out = capsys.readouterr().out
    assert "records waiting to sync: 7" in out and "hub not running" in out
    usb = hub_dir.parent / "export.mchx"
    assert main(["edge", "export", "--config", str(hub_dir), "--out", str(usb)]) == 0
    assert "records 1..7" in capsys.readouterr().out
    assert refcloud.import_export(usb.read_bytes()) == [200]
    assert refcloud.import_export(usb.read_bytes()) == [200]  # importing twice stores nothing twice
    assert [r[1] for r in refcloud.records("clinic-1")] == list(range(1, 8))


def test_damaged_database_recovery_path(hub_dir: Path, refcloud: RefCloud, capsys: pytest.CaptureFixture[str]) -> None:
    """Damage hub.db: the hub quarantines it, starts a new epoch, and the old unsynced records are
    exported from the quarantined file under their original identity and imported once."""
    import sqlite3

    refcloud.down = True

    async def record(first: int) -> tuple[int, str | None]:
        hub = await started(hub_dir)
        await add_readings(hub, range(first, first + 5))
        epoch, q = hub.reader.state()["epoch"], hub.quarantine
        await hub.stop()
        return epoch, q.describe() if q else None

    old_epoch, _ = asyncio.run(record(1))
    db = hub_dir.parent / "data" / "hub.db"
    conn = sqlite3.connect(db)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sessions'").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:  # scribble over the sessions table; readings stay readable
        f.seek((root - 1) * size)
        f.write(b"\x0d" + b"\xff" * 7)
    new_epoch, report = asyncio.run(record(6))
    assert new_epoch != old_epoch and report is not None and "seqs 1..5" in report and "--from-db" in report
    [quarantined] = (hub_dir.parent / "data" / "quarantine").glob("*.db")
    usb = hub_dir.parent / "old.mchx"
    assert main(["edge", "export", "--config", str(hub_dir), "--from-db", str(quarantined), "--out", str(usb)]) == 0
    assert "records 1..5" in capsys.readouterr().out
    assert refcloud.import_export(usb.read_bytes()) == [200]
    rows = refcloud.records("clinic-1")
    assert [(e, s) for e, s, _, _ in rows] == [(old_epoch, s) for s in range(1, 6)]


def test_check_config_builds_each_driver_and_names_the_bad_device(hub_dir: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    text = hub_dir.read_text().replace("[hub]\n", '[hub]\nplugins = ["tests.support.synthetic"]\n', 1)
    hub_dir.write_text(text + '[[stations.devices]]\nid = "syn"\ndriver = "synthetic"\nrate = -1\n')
    assert main(["edge", "check-config", "--config", str(hub_dir)]) == 2
    err = capsys.readouterr().err
    assert "stations[0].devices[0]" in err and "rate and count must not be negative" in err and "fix:" in err


def test_hash_password_prints_a_hash_for_hub_toml(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from provisioning.auth import verify_password

    monkeypatch.setattr("sys.stdin", io.StringIO("246810\n"))
    assert main(["edge", "hash-password"]) == 0
    stored = capsys.readouterr().out.strip()
    assert stored.startswith("scrypt$") and verify_password("246810", stored) and "246810" not in stored
    monkeypatch.setattr("sys.stdin", io.StringIO("2468\n"))  # the old demo PIN: 4 digits are refused
    assert main(["edge", "hash-password"]) == 2 and "at least 6" in capsys.readouterr().err


def test_status_names_stations_and_speaks_chinese_then_english(tmp_path: Path, refcloud: RefCloud,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The console names stations as the kiosk and the status page do (the id only where a station has
    no name), with labels in Chinese then English like the CLI's other messages."""
    from edge.store.ledger import IdentifyIn
    from protocol.model import Subject
    from tests.edge.conftest import make_hub_dir

    refcloud.down = True
    cfg = make_hub_dir(tmp_path / "hub", refcloud, stations='[[stations]]\nid = "room-1"\nname = "一诊室"\n'
                                                            '[[stations]]\nid = "room-2"\n')
    cfg.write_text(cfg.read_text(encoding="utf-8").replace('language = "en"', 'language = "zh-CN"'),
                   encoding="utf-8")

    async def record() -> None:
        hub = await started(cfg)
        await hub.writer.submit(IdentifyIn("room-1", Subject(national_id=None, name="王芳", source="staff")))
        await hub.writer.submit(IdentifyIn("room-2", Subject(national_id=None, name="李四", source="staff")))
        await hub.stop()

    asyncio.run(record())
    assert main(["edge", "status", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    visits = [line for line in out.splitlines() if "王*" in line or "李*" in line]
    assert len(visits) == 2 and "一诊室" in visits[0] + visits[1] and "room-1" not in out
    assert any("room-2" in line for line in visits)  # no name configured: its id
    assert "待同步记录 / records waiting to sync: 2" in out and "今日就诊 / today's sessions: 2" in out
    assert "网关未运行" in out and "hub not running" in out


def test_dead_letter_refusals_say_what_to_run_next(hub_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.commands import commands_in, parse_error

    assert main(["edge", "dead-letters", "resend", "--config", str(hub_dir)]) == 2
    err = capsys.readouterr().err
    assert "缺少记录序号" in err and "needs the record's seq" in err
    named = commands_in(err)
    assert [a[:3] for a in named] == [["edge", "dead-letters", "list"]] and parse_error(named[0]) is None
    assert main(["edge", "dead-letters", "dismiss", "7", "--config", str(hub_dir)]) == 2  # the hub is not running
    err = capsys.readouterr().err
    assert "网关没有响应" in err and "sudo systemctl start mchub-edge" in err
