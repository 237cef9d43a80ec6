"""`mchub cloud init / site / hub / import` as an operator runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from firmware_sim.fleet import VirtualHub
from protocol.export import write_export
from tests.cloud.support import public_keys


def mchub(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mchub", "cloud", *args], cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(Path.cwd()), "PATH": "/usr/bin:/bin"})


def test_register_a_hub_without_provisioning_and_import_its_export(tmp_path: Path) -> None:
    from cloud.intake.keystore import load_keys

    r = mchub("init", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "recipient x25519-aes256gcm" in r.stdout and (tmp_path / "admin.token").stat().st_mode & 0o077 == 0
    assert mchub("init", cwd=tmp_path).returncode == 2  # never overwrites keys
    keys = load_keys(tmp_path / "keys")
    h = VirtualHub("H042", public_keys(keys))
    r = mchub("hub", "add", "--id", "H042", "--site", "S9", "--public-key", h.public_key_hex, cwd=tmp_path)
    assert r.returncode == 0 and "key id" in r.stdout, r.stderr
    r = mchub("hub", "add", "--id", "H043", "--public-key", "zz", cwd=tmp_path)
    assert r.returncode == 2 and "--public-key is not hex" in r.stderr
    h.add_visit()
    (tmp_path / "usb.mchx").write_bytes(write_export([h.seal_from(1)]))
    r = mchub("import", "usb.mchx", cwd=tmp_path)
    assert r.returncode == 0 and "4 new reading(s) [200: 1]" in r.stdout, r.stdout + r.stderr
    r = mchub("hub", "list", cwd=tmp_path)
    assert "H042" in r.stdout and ":6" in r.stdout
    assert mchub("hub", "revoke", "--id", "H042", "--reason", "lost", cwd=tmp_path).returncode == 0
    r = mchub("import", "usb.mchx", cwd=tmp_path)
    assert r.returncode == 1 and "403 revoked" in r.stdout
    r = mchub("serve", "--config", "missing.toml", cwd=tmp_path)
    assert r.returncode == 2 and "file not found" in r.stderr


def test_outbox_list_and_replay_a_dead_letter(tmp_path: Path) -> None:
    import asyncio

    from cloud import outbox
    from cloud.config import OutboxConfig, load
    from cloud.db.engine import Database
    from cloud.db.migrations import migrate

    assert mchub("init", cwd=tmp_path).returncode == 0

    async def dead_letter() -> int:
        db = await Database.connect(load(tmp_path / "cloud.toml").database.url)
        await migrate(db)
        async with db.transaction() as tx:
            await outbox.enqueue(tx, "his.vitals", "v1", {})
        (m,) = await outbox.claim(db, "his.vitals")
        await outbox.fail(db, m.id, "AE: unknown patient", OutboxConfig(max_attempts=1))
        await db.close()
        return m.id

    message_id = asyncio.run(dead_letter())
    r = mchub("outbox", "list", cwd=tmp_path)
    assert "his.vitals" in r.stdout and "AE: unknown patient" in r.stdout, r.stderr
    assert mchub("outbox", "replay", str(message_id), cwd=tmp_path).returncode == 0
    r = mchub("outbox", "replay", str(message_id), cwd=tmp_path)
    assert r.returncode == 2 and "not a dead letter" in r.stderr
