"""The cloud audit log is append-only and hash-chained; `mchub cloud audit verify` finds any change.

Runs on SQLite and PostgreSQL: the triggers refuse UPDATE/DELETE (and TRUNCATE), someone
who bypasses them (a superuser) is caught by the chain, and pruning after the retention
period moves the checkpoint so the rest still verifies.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cloud import audit
from cloud.audit import chain as audit_chain
from cloud.db.engine import Database
from cloud.db.migrations import migrate
from cloud.errors import RuleViolation
from protocol.ids import now_ms

ROOT = Path(__file__).resolve().parents[2]


async def _write(db: Database, n: int, at_ms: int | None = None, hub: str = "H1") -> None:
    async with db.transaction() as tx:
        for i in range(n):
            if at_ms is None:
                await audit.write(tx, actor="test", action="batch.refused", outcome="refused", hub_id=hub,
                                  reason=f"r{i}", detail={"i": i})
            else:  # an entry written long ago
                await tx.execute("INSERT INTO audit_log (at_ms, actor, action, outcome, hub_id, detail) "
                                 "VALUES ($1, 'test', 'old', 'ok', $2, '{}')", at_ms, hub)


async def _bypass(db: Database, sql: str, *args: object) -> None:
    """What a database superuser can do: switch the triggers off and change rows."""
    async with db.transaction() as tx:
        if db.dialect == "postgres":
            await tx.execute("SET LOCAL session_replication_role = replica")
            await tx.execute(sql, *args)
        else:
            raw = tx.raw
            names = [r[0] for r in await (await raw.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'")).fetchall()]
            saved = [r[0] for r in await (await raw.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_log'")).fetchall()]
            for name in names:
                await raw.execute(f"DROP TRIGGER {name}")
            await tx.execute(sql, *args)
            for text in saved:
                await raw.execute(text)


@pytest.fixture
async def db(any_cloud):  # type: ignore[no-untyped-def]
    cfg, _ = any_cloud
    database = await Database.connect(cfg.database.url, 2)
    await migrate(database)
    yield database
    await database.close()


async def test_entries_are_chained_and_the_log_refuses_update_delete_truncate(db: Database) -> None:
    await _write(db, 5)
    assert await audit_chain.seal_all(db) == 5
    await _write(db, 3)
    assert await audit_chain.seal_all(db) == 3
    verdict = await audit_chain.verify(db)
    assert verdict.ok and verdict.entries == 8 and verdict.head_seq == 8, verdict.describe()
    statements = ["UPDATE audit_log SET reason = 'nothing happened' WHERE chain_seq = 2",
                  "DELETE FROM audit_log WHERE chain_seq = 3", "UPDATE audit_chain SET head_seq = 2",
                  "DELETE FROM audit_chain"]
    if db.dialect == "postgres":
        statements.append("TRUNCATE audit_log")
    for sql in statements:
        with pytest.raises(RuleViolation, match=r"append-only|only moves forward"):
            async with db.transaction() as tx:
                await tx.execute(sql)
    assert (await audit_chain.verify(db)).ok


@pytest.mark.parametrize("attack", ["modify", "delete_middle", "delete_last", "reorder"])
async def test_verify_names_the_first_altered_entry(db: Database, attack: str) -> None:
    await _write(db, 6)
    await audit_chain.seal_all(db)
    if attack == "modify":
        await _bypass(db, "UPDATE audit_log SET reason = 'ok' WHERE chain_seq = 4")
        want = (4, "modified")
    elif attack == "delete_middle":
        await _bypass(db, "DELETE FROM audit_log WHERE chain_seq = 3")
        want = (3, "missing")
    elif attack == "delete_last":
        await _bypass(db, "DELETE FROM audit_log WHERE chain_seq = 6")
        want = (6, "deleted")
    else:  # swap the content of two entries, keeping their chain columns
        await _bypass(db, "UPDATE audit_log SET chain_seq = -chain_seq WHERE chain_seq IN (2, 5)")
        await _bypass(db, "UPDATE audit_log SET chain_seq = 7 - chain_seq WHERE chain_seq IN (-2, -5)")
        want = (2, "")
    verdict = await audit_chain.verify(db)
    assert not verdict.ok
    assert verdict.broken_seq == want[0] and want[1] in verdict.describe(), verdict.describe()


async def test_pruning_keeps_six_months_and_the_rest_still_verifies(db: Database) -> None:
    now = now_ms()
    await _write(db, 4, at_ms=now - 400 * audit_chain.DAY_MS)
    await _write(db, 3, at_ms=now - 10 * audit_chain.DAY_MS)
    await audit_chain.seal_all(db)
    assert await audit_chain.prune(db, retention_days=183, now=now) == 4
    assert await audit_chain.prune(db, retention_days=183, now=now) == 0  # idempotent
    await audit_chain.seal_all(db)  # the prune's own entry
    verdict = await audit_chain.verify(db)
    assert verdict.ok and verdict.first_seq == 5 and verdict.entries == 4, verdict.describe()
    async with db.transaction() as tx:
        actions = [r["action"] for r in await tx.fetch("SELECT action FROM audit_log ORDER BY chain_seq")]
    assert actions[-1] == "audit.prune"
    await _bypass(db, "DELETE FROM audit_log WHERE chain_seq = 5")  # the first retained entry
    assert (await audit_chain.verify(db)).broken_seq == 5


def test_cli_verify_exits_1_when_a_row_was_altered(sqlite_cloud) -> None:
    cfg, _ = sqlite_cloud
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def cli(action: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mchub", "cloud", "audit", action, "--config", str(cfg.path)],
                              capture_output=True, text=True, env=env, timeout=60)

    assert cli("verify").returncode == 0  # empty log
    db = sqlite3.connect(cfg.database.url.removeprefix("sqlite:///"))
    db.execute("INSERT INTO audit_log (at_ms, actor, action, outcome, detail) VALUES (1, 'cli', 'x', 'ok', '{}')")
    db.commit()
    ok = cli("verify")
    assert ok.returncode == 0 and "intact: 1 entries" in ok.stdout, ok.stdout + ok.stderr
    db.execute("DROP TRIGGER audit_log_no_update")
    db.execute("UPDATE audit_log SET actor = 'someone else'")
    db.commit()
    bad = cli("verify")
    assert bad.returncode == 1 and "BROKEN at seq 1" in bad.stdout, bad.stdout + bad.stderr
