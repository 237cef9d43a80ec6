"""Hand-carry export: unsynced records sealed exactly like sync batches, for a USB stick.

The file is an export file of docs/protocol.md §7 (:mod:`protocol.export`, ``.mchx``):
a magic and version, then each sealed batch with its length. The cloud imports it through
the same checks and the same transaction as an upload (``mchub cloud import FILE``), so
records it already holds are ignored and nothing is stored twice. Exporting does not mark
anything synced: the hub keeps syncing normally when it gets a network again.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from edge.identity import Identity
from edge.store.reader import Reader
from edge.store.seqtime import first_seq_since
from protocol import export as export_format
from protocol.envelope import seal


@dataclass(frozen=True)
class Exported:
    """What an export wrote."""

    first: int
    last: int
    batches: int
    problem: str | None = None  #: set when a damaged database stopped the export early


def export(reader: Reader, identity: Identity, out: Path, since_seq: int | None = None,
           batch: int = 5000) -> Exported:
    """Write records from ``since_seq`` (default: first unacknowledged) to the end.

    Also works on a quarantined (damaged) database opened read-only: it exports the
    readable records up to the first damaged one, under their original epoch and seqs,
    so the cloud can take them without duplicates.
    """
    st = reader.state()
    first = since_seq if since_seq is not None else st["acked_through"] + 1
    kept = reader.first_kept_seq()
    if kept is not None and first < kept:
        first = kept
    seq, batches, problem = first, 0, None
    tmp = out.with_suffix(out.suffix + ".part")
    with open(tmp, "wb") as f:
        f.write(export_format.HEADER)
        while True:
            try:
                records = reader.records(seq, batch)
            except sqlite3.DatabaseError as exc:
                problem = f"stopped at seq {seq}: {exc}"
                break
            if not records:
                break
            f.write(export_format.entry(seal(records, hub_id=st["hub_id"], epoch=st["epoch"],
                                             signer=identity.signer, recipient=identity.recipient)))
            batches += 1
            seq = records[-1].seq + 1
        f.flush()
        os.fsync(f.fileno())
    if not batches:
        tmp.unlink()
        return Exported(0, 0, 0, problem)
    os.replace(tmp, out)
    return Exported(first, seq - 1, batches, problem)


def seq_since(reader: Reader, since: str) -> int:
    """``--since`` as a seq number or an ISO date/time (first record at or after it)."""
    if since.isdigit():
        return int(since)
    import datetime as dt

    try:
        when = dt.datetime.fromisoformat(since)
    except ValueError:
        raise ValueError(f"--since {since!r}: give a seq number or a date like 2025-03-01 "
                         "or 2025-03-01T08:00") from None
    ms = int(when.timestamp() * 1000)
    with reader._lock:
        return first_seq_since(reader.conn, ms)
