"""Structured JSON logs, one object per line on stderr, for people and log shippers alike.

    {"ts": "2025-03-01T08:00:00.123Z", "level": "WARNING", "logger": "mchub.cloud.ingest",
     "msg": "batch refused: revoked (...) hub=H001 ...", "pid": 4242}

Nothing here ever formats a national ID number or a name: callers log ids, counts and
reason codes only (a test greps the log output for the ID numbers it sent). As a last line of
defence the handler masks any ID number that slips into a message or traceback
(:class:`protocol.logmask.MaskingFilter`). uvicorn's access log stays off (``serve`` starts
uvicorn with ``access_log=False``; the proxy in front keeps the access log): a worker's
``setup`` must not let it come back through the root logger (issue 17 finding 9), and if it
is ever switched on, its lines lose their query strings.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import sys

import msgspec

from protocol.logmask import MaskingFilter, mask_id_numbers

_enc = msgspec.json.Encoder()


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": os.getpid(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_text or record.exc_info:
            doc["exc"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        return mask_id_numbers(_enc.encode(doc).decode())


def setup(level: str = "INFO", json: bool = True) -> None:
    """Route every logger (ours and uvicorn's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json else
                         logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    access = logging.getLogger("uvicorn.access")  # off: no handler, and nothing reaches the root's
    access.handlers[:] = []
    access.propagate = False
    # the SQLite driver logs every call with its arguments at DEBUG: never, even when we debug
    logging.getLogger("aiosqlite").setLevel(max(logging.WARNING, logging.getLevelName(level)))
