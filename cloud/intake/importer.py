"""``mchub cloud import FILE``: hand-carried export files (protocol.export, docs/protocol.md §7).

Each batch goes through :meth:`cloud.intake.ingest.Ingestor.handle` exactly as if the hub had
POSTed it: same checks, same transaction, same audit. Batches are imported in file order;
a gap (an earlier file is missing) is reported and the rest of the file still tried.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cloud.errors import ImportFileError
from cloud.intake.ingest import Ingestor
from protocol.envelope import MAGIC as BATCH_MAGIC
from protocol.export import ExportFormatError, read_export


@dataclass
class ImportReport:
    """What happened to each batch of a file."""

    batches: int = 0
    readings: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)  #: "200", "409", "403 revoked", ...
    refused: int = 0  #: records refused one by one (docs/protocol.md §3.1; on the dashboard)
    problem: str | None = None  #: the file is damaged after the batches counted here


async def import_file(ingestor: Ingestor, path: Path) -> ImportReport:
    """Import every batch of an export file in order.

    Raises ImportFileError when the file cannot be read or is not an export file at all. A
    file damaged part-way (e.g. a truncated copy) has its intact batches imported, and the
    damage is reported in :attr:`ImportReport.problem`.
    """
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror}") from exc
    if data[:4] == BATCH_MAGIC:
        raise ImportFileError(f"{path}: this is one bare sealed batch, not an export file (docs/protocol.md §7).\n"
                              "  Fix: export with `mchub edge export`, or POST the batch to /api/v1/batches")
    report = ImportReport()
    batches = read_export(data)
    while True:
        try:
            batch = next(batches, None)
        except ExportFormatError as exc:
            if not report.batches:
                raise ImportFileError(f"{path}: {exc}") from exc
            report.problem = f"{path}: {exc}; the {report.batches} batch(es) before it were imported"
            return report
        if batch is None:
            return report
        answer = await ingestor.handle(batch, source="import", peer=path.name)
        report.batches += 1
        report.readings += answer.new_readings
        report.refused += answer.refused
        report.outcomes[f"{answer.status}" + (f" {answer.reason}" if answer.reason else "")] += 1
