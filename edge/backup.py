"""Backup and restore of hub.db (``mchub edge backup`` / ``mchub edge restore``).

**Backup** uses SQLite's online backup API: a consistent copy while the hub runs, written
to ``FILE.part``, fsynced, then renamed.

**Restore** must never let the hub reuse a sequence number the cloud already holds, and
must not lose or duplicate what the backup held but the cloud had not acknowledged when
the backup was taken. So:

1. the backup is checked (``PRAGMA quick_check``) and must belong to this hub;
2. its unacknowledged records (``acked_through + 1 .. next_seq - 1``) are exported under
   their ORIGINAL epoch and seqs to ``data/restored-<epoch>-<time>.mchx`` and, when
   ``[sync] url`` is set, uploaded right away (the cloud ignores what it already holds);
   otherwise ``mchub cloud import FILE`` takes them;
3. the current hub.db (if any) is moved to ``data/replaced/`` (export it with
   ``mchub edge export --from-db`` if it holds records taken after the backup);
4. the backup becomes hub.db with a NEW epoch, ``next_seq = 1`` and no records: sessions,
   subjects, the audit trail and the resend memory (``seen``) are kept for the screens.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from edge.errors import StoreError
from edge.export import export
from edge.identity import Identity
from edge.store.reader import Reader
from edge.store.schema import connect, mint_epoch
from protocol.export import ExportFormatError, read_export

BATCH_TYPE = "application/vnd.mchx.batch"


@dataclass(frozen=True)
class BackedUp:
    """What a backup holds."""

    hub_id: str
    epoch: int
    next_seq: int
    acked_through: int
    size: int


@dataclass(frozen=True)
class Restored:
    """What a restore did."""

    old_epoch: int
    new_epoch: int
    exported: Path | None  #: the backup's unacknowledged records, or None when there were none
    first: int
    last: int
    replaced: Path | None  #: where the previous hub.db went
    uploaded: str  #: outcome of uploading the export ("" when not tried)


def _state(path: Path) -> tuple[str, int, int, int]:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            check = conn.execute("PRAGMA quick_check").fetchall()
            row = conn.execute("SELECT hub_id, epoch, next_seq, acked_through FROM sync_state WHERE id = 1").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path} is not a readable hub database: {exc}") from exc
    if check != [("ok",)]:
        raise StoreError(f"{path} is damaged ({check[0][0]}); use another backup, or recover what is readable "
                         f"with `mchub edge export --from-db {path} --out FILE`")
    if row is None:
        raise StoreError(f"{path} has no sync state: it is not a hub database")
    return str(row[0]), int(row[1]), int(row[2]), int(row[3])


def backup(db_path: Path, out: Path) -> BackedUp:
    """Consistent copy of ``db_path`` to ``out`` (safe while the hub runs)."""
    if not db_path.exists():
        raise StoreError(f"{db_path} does not exist: the hub has never run with this data_dir; check that --config "
                         "names this hub's hub.toml, or start the hub first (sudo systemctl start mchub-edge)")
    tmp = out.with_name(out.name + ".part")
    try:
        src = connect(db_path, readonly=True)
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    except (OSError, sqlite3.Error) as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot back up {db_path} to {out}: {exc}") from exc
    hub_id, epoch, nxt, acked = _state(out)
    return BackedUp(hub_id, epoch, nxt, acked, out.stat().st_size)


def upload(url: str, file: Path, timeout: float = 30.0) -> str:
    """POST every batch of an export file to the cloud; a one-line outcome (statuses counted)."""
    try:
        batches = list(read_export(file.read_bytes()))
    except (OSError, ExportFormatError) as exc:
        return f"not uploaded ({exc})"
    outcomes: dict[str, int] = {}
    for batch in batches:
        request = urllib.request.Request(f"{url}/api/v1/batches", data=batch, method="POST",  # noqa: S310
                                         headers={"Content-Type": BATCH_TYPE})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as resp:  # noqa: S310 - the configured cloud
                status = str(resp.status)
        except urllib.error.HTTPError as exc:
            status = str(exc.code)
        except (urllib.error.URLError, OSError) as exc:
            return f"not uploaded (cloud unreachable: {exc}); import the file in the cloud"
        outcomes[status] = outcomes.get(status, 0) + 1
    return ", ".join(f"{n} batch(es) HTTP {s}" for s, n in sorted(outcomes.items()))


def restore(data_dir: Path, identity: Identity, source: Path, sync_url: str | None) -> Restored:
    """Make ``source`` (a backup) this hub's database under a new epoch; see the module docstring."""
    hub_id, old_epoch, _, _ = _state(source)
    if hub_id != identity.hub_id:
        raise StoreError(f"{source} belongs to hub {hub_id!r}, not {identity.hub_id!r}: "
                         "restore this hub's own backup")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    data_dir.mkdir(parents=True, exist_ok=True)
    out = data_dir / f"restored-{old_epoch:x}-{stamp}.mchx"
    reader = Reader(source, identity.decrypt, readonly=True)
    try:
        done = export(reader, identity, out)
    finally:
        reader.close()
    db = data_dir / "hub.db"
    replaced = None
    if db.exists():
        replaced_dir = data_dir / "replaced"
        replaced_dir.mkdir(exist_ok=True)
        replaced = replaced_dir / f"hub-{stamp}.db"
        for suffix in ("", "-wal", "-shm"):
            if Path(str(db) + suffix).exists():
                os.replace(Path(str(db) + suffix), Path(str(replaced) + suffix))
    tmp = data_dir / "hub.db.restoring"
    shutil.copyfile(source, tmp)
    new_epoch = mint_epoch()
    conn = connect(tmp)
    try:
        with conn:
            conn.execute("BEGIN")
            conn.execute("DELETE FROM records")
            conn.execute("UPDATE sync_state SET epoch = ?, next_seq = 1, acked_through = 0, last_ack = NULL, "
                         "last_ack_ms = NULL, last_error = NULL, last_error_ms = NULL WHERE id = 1", (new_epoch,))
            conn.execute("INSERT INTO audit (at, kind, actor, detail) VALUES (?, 'restore', 'technician', ?)",
                         (int(time.time() * 1000), f"restored from {source}; epoch {old_epoch:x} -> {new_epoch:x}; "
                          f"unacknowledged records {done.first}..{done.last} exported to {out}"
                          if done.batches else f"restored from {source}; epoch {old_epoch:x} -> {new_epoch:x}"))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    os.replace(tmp, db)
    uploaded = upload(sync_url, out) if (sync_url and done.batches) else ""
    return Restored(old_epoch, new_epoch, out if done.batches else None, done.first, done.last, replaced, uploaded)
