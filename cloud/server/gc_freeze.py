"""Startup's objects out of the garbage collector's way, for a cloud process that runs for months."""

from __future__ import annotations

import gc


def freeze_startup() -> None:
    """Collect once, then freeze everything startup loaded (modules, the app, its caches): it stays for the
    process's life, and a frozen object is never walked again. Unfrozen, every full collection walked it all
    (~125,000 objects in a web worker: ~150 ms of the event loop's time, 409 ms on a loaded CI machine,
    tests/cloud/test_event_loop.py), on whichever request tipped the collector over. The collection first
    frees startup's own garbage, which frozen would stay for good."""
    gc.collect()
    gc.freeze()
