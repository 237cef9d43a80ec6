"""Password hashing off the event loop: one low-priority thread, one scrypt at a time.

scrypt costs ~0.1 s of CPU and 32 MB per call. A flood of failed logins then queues here
instead of taking every core from the loop and from batch ingest
(tests/cloud/test_event_loop.py measures the loop's lag).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from provisioning import auth


def _background_thread() -> None:
    """The hashing thread runs at nice 10 (Linux: per thread), so a login flood never starves ingest."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


_HASHER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mchub-scrypt",
                                                initializer=_background_thread)
_T = TypeVar("_T")


async def hashing(fn: Callable[..., _T], *args: Any) -> _T:
    """Run ``fn`` (a password hash or check) in the hashing thread."""
    return await asyncio.get_running_loop().run_in_executor(_HASHER, fn, *args)


@functools.cache
def _dummy_hash() -> str:
    return auth.hash_password("not a password, only makes the timing equal")


def verify_dummy(password: str) -> bool:
    """A wrong-user login costs what a wrong password costs; in a worker thread (the first call also hashes)."""
    return auth.verify_password(password, _dummy_hash())
