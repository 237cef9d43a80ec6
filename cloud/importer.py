"""``mchub cloud import FILE``: hand-carried export files (protocol.export, docs/protocol.md §7).

Each batch goes through :meth:`cloud.ingest.Ingestor.handle` exactly as if the hub had
POSTed it: same checks, same transaction, same audit. Batches are imported in file order;
a gap (an earlier file is missing) is reported and the rest of the file still tried.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cloud.errors import ImportFileError
from cloud.ingest import Ingestor
from protocol.envelope import MAGIC as BATCH_MAGIC
from protocol.export import ExportFormatError, read_export


@dataclass
class ImportReport:
    """What happened to each batch of a file."""

    batches: int = 0
    readings: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  #: "200", "409", "403 revoked", ...


async def import_file(ingestor: Ingestor, path: Path) -> ImportReport:
    """Import every batch of an export file (or one bare sealed batch)."""
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        batches = [data] if data[:4] == BATCH_MAGIC else list(read_export(data))
    except ExportFormatError as exc:
        raise ImportFileError(f"{path}: {exc}") from exc
    report = ImportReport()
    for batch in batches:
        answer = await ingestor.handle(batch, source="import", peer=path.name)
        report.batches += 1
        report.readings += answer.new_readings
        report.outcomes[f"{answer.status}" + (f" {answer.reason}" if answer.reason else "")] += 1
    return report
