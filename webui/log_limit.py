"""Log a recurring event at most once per interval (floods must not grow the log).

    limit = LogLimit(60.0)
    if (skipped := limit.due("accept:EMFILE")) is not None:
        log.warning("accept failed: too many open files (%d more since the last line)", skipped)

Also :func:`quiet_accept_errors`, an asyncio exception handler that turns the event loop's
"socket.accept() out of system resource" reports (one with a traceback per failed accept)
into one line per interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

_log = logging.getLogger("mchub.web")


class LogLimit:
    """Per key: the first event, then one per ``interval_s``; counts what it skipped."""

    def __init__(self, interval_s: float = 60.0, max_keys: int = 1000) -> None:
        self.interval_s, self.max_keys = interval_s, max_keys
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def due(self, key: str, now: float | None = None) -> int | None:
        """None: skip this one; else log it, with the number skipped since the last line."""
        t = time.monotonic() if now is None else now
        last = self._last.get(key)
        if last is not None and t - last < self.interval_s:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return None
        if len(self._last) >= self.max_keys:
            self._last = {k: v for k, v in self._last.items() if t - v < self.interval_s}
            self._skipped = {k: n for k, n in self._skipped.items() if k in self._last}
        self._last[key] = t
        return self._skipped.pop(key, 0)


def quiet_accept_errors(loop: asyncio.AbstractEventLoop, interval_s: float = 60.0) -> None:
    """Install on ``loop``: accept errors (EMFILE, ENFILE, ENOBUFS) logged once per interval,
    without a traceback; every other report goes to the handler that was there before."""
    previous = loop.get_exception_handler()
    limit = LogLimit(interval_s)

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith("socket.accept() out of system resource"):
            if (skipped := limit.due("accept")) is not None:
                _log.error("cannot accept connections: %s (%d more since the last line); the listener "
                           "retries by itself", context.get("exception"), skipped)
            return
        if previous is not None:
            previous(lp, context)
        else:
            lp.default_exception_handler(context)

    loop.set_exception_handler(handler)
