"""Shipped cloud migrations never change (issue 19, finding 7: shipped migrations read live SQL constants).

A migration's SQL runs once per database. Editing it — or editing a constant it reads from
another module (``pg_ingest.FUNCTION``, ``integration_schema.COMMON``, ``mch_schema.V5``,
``audit_schema.V7``) — changes fresh databases but not the ones already migrated, and the
two drift apart silently. The text of those migrations is now frozen in
``cloud/db/shipped.py`` and ``cloud/db/migrations.py`` may import nothing else of the cloud
(checked below). Each migration on main is pinned here by the SHA-256 of its
version and SQL (both dialects, PostgreSQL-only, SQLite-only). A change belongs in a NEW
migration; when a migration ships (reaches main), add its pin. Versions above the highest
one in ``MIGRATIONS`` are skipped, so a branch that does not have main's newest ones yet
still passes; after a merge they are checked.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from cloud.db.migrations import MIGRATIONS, SQLITE_ONLY

SHIPPED = {  # computed on main (migrations 1-15; 11 was never used)
    1: "789b31b13e06e4ffeae285efd102a32bd4ba0be9117eee32061ce71aa6a2d6a7",  # initial schema
    2: "77b05176f4ac04bd55c567a7920dc706500cbb9191d62a6845f0f8dc6809e91c",  # ingest function
    3: "cb8b1c6e28a4f23abcfa9dfa59dbeef779abafe4ffb860d6dc4f4eea03692c3c",  # admin users, sessions and provisioning
    4: "c74df5406a8a0ae4c31c5fe1877c81ab58860ba3af42f44a15d6889a22b66fce",  # hospital integration
    5: "5db58e644b9bdeff5505c5416870f2551b7f19a60d8091baec9f6efa953f84d6",  # mch cases and upload records
    6: "2af78597659a9fcdb9f646e6f0da8101934a4bb936adfe50c04ee90e4bde7625",  # web sessions, login throttle, samples
    7: "6b81e6a846c30396765efb72443c00c7babcf5baa8342d8fd55c937373a8a712",  # audit hash chain, append-only
    8: "6a397840c62e537d7832c54c9e9cadaf610b68d4c8eddc3461a3c1e062d472ff",  # ingest checks hub and key in its tx
    9: "c1034813cb5ec50ad8fb16c3f8c43e31c47b274c9d1b7af240e628ce6e8e254d",  # change-feed rows done on arrival
    10: "bf2e39e9dd89020b79e90dcd210479a2d6590683db3fa77b4788e3f38cb4c385",  # records refused one by one
    12: "02e5361497cd3a9b5e7916f6670a37a52d33809fedeeda8530ac281b7ec98876",  # session versions, escalating login locks
    13: "02e3c76dcba238ae69235ab06e0d93f2491aad932f0ff58b348f3ce6b3d123cc",  # hl7 duplicates by content
    14: "be0e0ada70f73922a34b236d42f2c767e0b7ade67e9d0a4c369696027a2b454c",  # dicom sender credentials
    15: "80918ddc899716727e29442fbc6f353770619dacb3df69df68151c4a3ab6837d",  # hub configuration push state
}


def _digest(version: int, common: str, pg_only: str) -> str:
    lite = SQLITE_ONLY.get(version, "")
    lite = "\n".join(lite) if isinstance(lite, tuple) else lite
    return hashlib.sha256("\x00".join([str(version), common, pg_only, lite]).encode()).hexdigest()


def test_no_shipped_migration_changed() -> None:
    have = {version: _digest(version, common, pg) for version, _, common, pg in MIGRATIONS}
    newest = max(have)
    changed = [v for v, pin in SHIPPED.items() if v <= newest and have.get(v) != pin]
    assert changed == [], (f"shipped cloud migration(s) {changed} changed or vanished (directly or through a "
                           "constant they read): restore the text and put the change in a new migration")


def test_versions_only_grow() -> None:
    versions = [version for version, _, _, _ in MIGRATIONS]
    assert versions == sorted(set(versions)), versions


def test_migrations_read_no_live_constant_of_another_module() -> None:
    """Only frozen text: cloud/db/migrations.py imports cloud.db.shipped and the engine, nothing else of ours."""
    source = Path(__file__).resolve().parents[3] / "cloud" / "db" / "migrations.py"
    tree = ast.parse(source.read_text(encoding="utf-8"))
    ours = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cloud":
            ours |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            ours |= {a.name for a in node.names if a.name.split(".")[0] == "cloud"}
    assert ours <= {"cloud.db.shipped", "cloud.db.engine.Database", "cloud.db.engine.Tx"}, ours
