"""hub.db migrations are atomic: a process killed anywhere inside any migration reopens cleanly.

The child process runs ``migrate()`` on a real file and ``os._exit()``s just before its
k-th writing statement (SQLite's statement trace fires as a statement starts); the parent
then opens the database the way the hub does and compares it with a fresh one. k runs
over every writing statement of every function in ``MIGRATIONS``, so a migration appended
later is covered without touching this file.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edge.errors import StoreError
from edge.store import schema
from edge.store.schema import MIGRATIONS, connect, migrate, open_db

KILLED = 77
REPO = Path(__file__).resolve().parents[2]

CHILD = """
import os, sys
from pathlib import Path
from edge.store.schema import connect, migrate

kill_at = int(sys.argv[2])
seen = 0

def trace(sql: str) -> None:
    global seen
    words = sql.lstrip().lower().split(None, 2)
    first = words[0] if words else ""
    if first in ("select", "savepoint", "release") or (first == "pragma" and not sql.lower().count("user_version =")):
        return  # reads and savepoint marks change nothing on disk: dying before one = dying before the next write
    seen += 1
    if seen == kill_at:
        os._exit(int(sys.argv[3]))

conn = connect(Path(sys.argv[1]))
conn.set_trace_callback(trace)
migrate(conn)
print(seen)
"""


def _schema(path: Path) -> tuple[int, list[tuple[Any, ...]]]:
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        rows = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master "
                            "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").fetchall()
    finally:
        conn.close()
    return int(version), rows


def _migrate_until(path: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, str(path), str(kill_at), str(KILLED)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_kill_before_any_statement_of_any_migration_reopens_at_the_latest_version(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh.db"
    done = _migrate_until(fresh, 0)  # never killed: counts the writing statements
    assert done.returncode == 0, done.stderr
    writes = int(done.stdout.split()[-1])
    expected = _schema(fresh)
    assert expected[0] == len(MIGRATIONS) and writes >= 2 * len(MIGRATIONS)  # each step: BEGIN .. COMMIT at least

    for k in range(1, writes + 1):
        db = tmp_path / f"killed-{k}.db"
        run = _migrate_until(db, k)
        assert run.returncode == KILLED, f"kill point {k}: {run.returncode} {run.stderr}"
        at_crash, _ = _schema(db)
        assert 0 <= at_crash < len(MIGRATIONS)
        conn, quarantine = open_db(db, "hub-1")  # what the hub does on its next start
        conn.close()
        assert quarantine is None, f"kill point {k}: {quarantine}"
        assert _schema(db) == expected, f"kill point {k} (died at version {at_crash})"


def test_a_step_that_commits_on_its_own_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def _bad(db: Any) -> None:
        db.conn.executescript("CREATE TABLE half (x INTEGER); CREATE TABLE built (y INTEGER);")

    monkeypatch.setattr(schema, "MIGRATIONS", [*MIGRATIONS, _bad])
    conn = connect(tmp_path / "hub.db")
    with pytest.raises(StoreError, match=r"migration \d+ \(_bad\) ended its transaction"):
        migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)  # the good steps stay applied
    assert not conn.in_transaction
    conn.close()


def test_a_failing_step_leaves_the_previous_version_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def _fails(db: Any) -> None:
        db.execute("CREATE TABLE partial (x INTEGER)")
        db.execute("INSERT INTO no_such_table VALUES (1)")

    monkeypatch.setattr(schema, "MIGRATIONS", [*MIGRATIONS, _fails])
    conn = connect(tmp_path / "hub.db")
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'partial'").fetchone()[0] == 0
    conn.close()


def test_a_multi_statement_step_through_executescript_is_one_transaction(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def _script(db: Any) -> None:
        db.executescript("CREATE TABLE a (x INTEGER); CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (1);")

    def _fails_after_a_script(db: Any) -> None:
        db.executescript("CREATE TABLE c (z INTEGER); CREATE TABLE d (w INTEGER);")
        db.execute("INSERT INTO no_such_table VALUES (1)")

    monkeypatch.setattr(schema, "MIGRATIONS", [*MIGRATIONS, _script, _fails_after_a_script])
    conn = connect(tmp_path / "hub.db")
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) + 1
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"a", "b"} <= names and not {"c", "d"} & names  # the failed step's script was rolled back whole
    conn.close()
