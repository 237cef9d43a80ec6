"""Deterministic crash points for the crash test (tests/edge/test_crash.py).

``crashpoint("after_commit")`` does nothing unless the environment variable
``MCHUB_CRASH_AT`` names that step; then the process SIGKILLs itself the
``MCHUB_CRASH_AFTER``-th time (default 1) the step is reached. SIGKILL, not an
exception: nothing is flushed, no ``finally`` runs — exactly a power cut as far as the
hub's own code can tell (SQLite's durability is what is under test).

The named steps, in the order a reading travels: see :data:`STEPS`.
"""

from __future__ import annotations

import os
import signal

STEPS = (
    "after_decode",  # a driver delivered an event, nothing stored yet
    "inside_commit",  # rows written inside the open transaction, not committed
    "after_commit",  # committed, the driver not yet told
    "after_seal",  # a batch is sealed, not yet sent
    "during_upload",  # the request went out, no answer read
    "after_response",  # the cloud committed and answered; the ack is not yet stored
    "after_ack_stored",  # the ack is durable, nothing pruned yet
    "during_prune",  # between two chunks of pruning
)

_TARGET = os.environ.get("MCHUB_CRASH_AT", "")
_countdown = int(os.environ.get("MCHUB_CRASH_AFTER", "1") or 1)


def crashpoint(name: str) -> None:
    """Kill this process with SIGKILL when ``MCHUB_CRASH_AT`` names ``name`` and the countdown ends."""
    global _countdown
    if name != _TARGET:
        return
    _countdown -= 1
    if _countdown <= 0:
        os.kill(os.getpid(), signal.SIGKILL)
